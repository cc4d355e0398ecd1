package mongoconn

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/internal/testenv"
)

func TestOpenAnswersOnALiveServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := Open(ctx, Options{URI: testenv.MongoURI(t)})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer Close(c)
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// MongoDB unreachable: a clear error within a bounded time, never a hang.
func TestUnreachableMongoFailsFast(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := Open(context.Background(), Options{URI: "mongodb://127.0.0.1:1/", ServerSelectionTimeout: 1500 * time.Millisecond})
	if !errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
		t.Fatalf("open of a dead server: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %s to fail", took)
	}
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestOpenRefusesABadURI(t *testing.T) {
	t.Parallel()
	for _, uri := range []string{"", "http://127.0.0.1:27018/"} {
		_, err := Open(context.Background(), Options{URI: uri})
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("open %q: %v; want an error that is not an outage", uri, err)
		}
	}
}

// The one outage classification, on errors a real server and a real client give.
func TestWrapUnavailableClassifiesOutagesOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.MongoDB(t)
	coll := db.Collection("things")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	_, dup := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}})
	noDoc := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "missing"}}).Err()

	dead, err := Open(ctx, Options{URI: testenv.MongoURI(t)})
	if err != nil {
		t.Fatal(err)
	}
	Close(dead)
	closed := dead.Database(db.Name()).Collection("things").FindOne(ctx, bson.D{}).Err()

	expired, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-expired.Done()
	timedOut := coll.FindOne(expired, bson.D{}).Err()

	_, err = Open(ctx, Options{URI: "mongodb://127.0.0.1:1/", ServerSelectionTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("open of a dead server succeeded")
	}

	for _, tc := range []struct {
		name   string
		err    error
		outage bool
	}{
		{"nil", nil, false},
		{"duplicate key", dup, false},
		{"no document", noDoc, false},
		{"plain error", errors.New("boom"), false},
		{"closed client", closed, true},
		{"deadline exceeded", timedOut, true},
		{"bare deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), true},
		{"already wrapped", err, true},
	} {
		got := WrapUnavailable(tc.err)
		if tc.err != nil && got == nil {
			t.Errorf("%s: WrapUnavailable(%v) = nil", tc.name, tc.err)
			continue
		}
		if is := errors.Is(got, ErrUnavailable); is != tc.outage || IsUnavailable(tc.err) != tc.outage {
			t.Errorf("%s: WrapUnavailable(%v) = %v (ErrUnavailable %v, IsUnavailable %v); want outage %v",
				tc.name, tc.err, got, is, IsUnavailable(tc.err), tc.outage)
		}
		if !tc.outage && (tc.err == nil) != (got == nil) || !tc.outage && got != nil && got.Error() != tc.err.Error() {
			t.Errorf("%s: WrapUnavailable changed a non-outage error: %v -> %v", tc.name, tc.err, got)
		}
		var marker interface{ Unavailable() bool }
		if tc.outage && (!errors.As(got, &marker) || !marker.Unavailable()) {
			t.Errorf("%s: %v does not report Unavailable() for the HTTP edge", tc.name, got)
		}
	}
}
