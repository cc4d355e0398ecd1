package executorapi

import (
	"context"
	"slices"
	"testing"
)

func TestRemoteProviderSaysWhatToRunThere(t *testing.T) {
	c := Created{ID: "ex1", Token: "aigwx_ex1_s3cret", Pool: "edge", Name: "laptop-1"}
	e, err := Remote{URL: "https://gw.example.com/function/executors"}.Start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"aigw-worker", "--join", "https://gw.example.com/function/executors", "--token", "aigwx_ex1_s3cret"}
	if !slices.Equal(e.Command, want) || e.ID != "ex1" || e.Pool != "edge" || e.PID != 0 {
		t.Fatalf("executor %+v", e)
	}
	if _, err := (Remote{}).Start(context.Background(), c); err == nil {
		t.Fatal("a remote provider without the API's URL started an executor")
	}
	if got := redact(want); got[4] == c.Token {
		t.Fatalf("token shown: %v", got)
	}
}
