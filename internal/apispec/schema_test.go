package apispec

import (
	"testing"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/quota"
	"github.com/aigw/aigw/internal/submit"
	"github.com/aigw/aigw/internal/webhook"
)

// TestSchemasMatchTheGoTypes: each schema of the document has exactly the
// JSON fields of the Go type the API writes, so a field added to a record
// shows up here before a client meets it.
func TestSchemasMatchTheGoTypes(t *testing.T) {
	for name, c := range map[string]struct {
		v     any
		extra []string // fields the API adds to the type
	}{
		"Job":                 {job.Job{}, []string{"queue_position", "eta_start"}},
		"JobError":            {job.Error{}, nil},
		"Webhook":             {job.Webhook{}, nil},
		"Artifact":            {job.Artifact{}, nil},
		"Usage":               {job.Usage{}, nil},
		"UsageRow":            {jobstore.UsageRow{}, nil},
		"Quota":               {quota.Quota{}, nil},
		"TenantQuotas":        {quota.Tenant{}, nil},
		"AlgorithmDefinition": {algorithm.Definition{}, nil},
		"Runtime":             {algorithm.Runtime{}, nil},
		"Resources":           {algorithm.Resources{}, nil},
		"Delivery":            {webhook.Delivery{}, nil},
		"DeliveryAttempt":     {webhook.Attempt{}, nil},
		"Policy":              {submit.Policy{}, nil},
		"Pipeline":            {pipeline.Pipeline{}, nil},
		"PipelineDefinition":  {pipeline.Definition{}, nil},
		"Step":                {pipeline.Step{}, nil},
		"PipelineRun":         {pipeline.Run{}, nil},
		"StepRun":             {pipeline.StepRun{}, nil},
	} {
		CheckSchema(t, name, c.v, c.extra...)
	}
}
