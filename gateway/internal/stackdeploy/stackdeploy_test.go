package stackdeploy

import (
	"strings"
	"testing"
)

func TestRepositoryStackBecomesDeployments(t *testing.T) {
	t.Setenv("AIGW_VERSION", "1.2.3")
	s, err := Parse("../../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"auth", "router", "orchestrator"} {
		f, ok := s.Functions[name]
		if !ok {
			t.Fatalf("stack.yml has no %s", name)
		}
		d := Deployment(name, f, map[string]string{"EXTRA": "1"})
		if d.Service != name || d.Image != "ghcr.io/aigw/"+name+":1.2.3" || d.EnvVars["EXTRA"] != "1" || len(d.Secrets) == 0 || d.Labels == nil {
			t.Errorf("%s: %+v", name, d)
		}
		if !strings.Contains(strings.Join(d.Secrets, ","), "aigw-mongo-uri") {
			t.Errorf("%s lacks the mongo secret: %v", name, d.Secrets)
		}
	}
	orch := Deployment("orchestrator", s.Functions["orchestrator"], nil)
	if orch.Annotations == nil || (*orch.Annotations)["topic"] != "cron-function" || (*orch.Annotations)["aigw.path"] != "/tick" {
		t.Errorf("orchestrator annotations: %v", orch.Annotations)
	}
}

func TestBadGatewayURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := NewClient(u, "a", "b"); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
