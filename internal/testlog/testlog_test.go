package testlog

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// capture is a testing.TB whose Log lines are kept.
type capture struct {
	testing.TB
	lines []string
}

func (c *capture) Helper()         {}
func (c *capture) Log(args ...any) { c.lines = append(c.lines, fmt.Sprint(args...)) }

func TestLoggerWritesOneLinePerRecordToTheTestLog(t *testing.T) {
	c := &capture{TB: t}
	log := New(c)
	log.Debug("claimed", "job_id", "j1")
	log.Info("done")
	if len(c.lines) != 2 {
		t.Fatalf("lines %q, want 2", c.lines)
	}
	if !strings.Contains(c.lines[0], "level=DEBUG") || !strings.Contains(c.lines[0], "job_id=j1") ||
		strings.HasSuffix(c.lines[0], "\n") {
		t.Fatalf("line %q", c.lines[0])
	}
}

func TestAtLevelDropsLowerRecords(t *testing.T) {
	c := &capture{TB: t}
	log := AtLevel(c, slog.LevelWarn)
	log.Info("quiet")
	log.Warn("loud")
	if len(c.lines) != 1 || !strings.Contains(c.lines[0], "msg=loud") {
		t.Fatalf("lines %q, want the warning only", c.lines)
	}
}

func TestRecordsAfterTheTestEndedAreDropped(t *testing.T) {
	var c *capture
	var log *slog.Logger
	t.Run("component", func(t *testing.T) {
		c = &capture{TB: t}
		log = New(c)
		log.Info("during")
	})
	log.Info("after") // a goroutine of the ended test still logging
	if len(c.lines) != 1 || !strings.Contains(c.lines[0], "msg=during") {
		t.Fatalf("lines %q, want only the record written during the test", c.lines)
	}
}
