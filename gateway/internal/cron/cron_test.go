package cron

import (
	"testing"

	"github.com/openfaas/faas-provider/types"
)

func TestJobFor(t *testing.T) {
	t.Parallel()
	ann := func(m map[string]string) *map[string]string { return &m }
	for _, tc := range []struct {
		ann     *map[string]string
		want    Job
		ok, bad bool
	}{
		{ann: nil},
		{ann: ann(map[string]string{"schedule": "* * * * *"})},
		{ann: ann(map[string]string{"topic": "cron-function", "schedule": "*/5 * * * *"}), want: Job{Function: "f", Schedule: "*/5 * * * *", Path: "/"}, ok: true},
		{ann: ann(map[string]string{"topic": "cron-function", "schedule": "@every 1s", "aigw.path": "/tick", "aigw.auth-secret": "tok"}), want: Job{Function: "f", Schedule: "@every 1s", Path: "/tick", AuthSecret: "tok"}, ok: true},
		{ann: ann(map[string]string{"topic": "cron-function", "schedule": "61 * * * *"}), bad: true},
		{ann: ann(map[string]string{"topic": "cron-function"}), bad: true},
	} {
		j, ok, err := JobFor(types.FunctionStatus{Name: "f", Annotations: tc.ann})
		if (err != nil) != tc.bad || ok != tc.ok || j != tc.want {
			t.Errorf("JobFor(%v) = %+v, %v, %v", tc.ann, j, ok, err)
		}
	}
}
