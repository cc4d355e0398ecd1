package fairnessbench

import (
	"testing"

	"github.com/aigw/aigw/internal/testleak"
)

func TestMain(m *testing.M) { testleak.Main(m) }
