package executors

import (
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/apispec"
	"github.com/aigw/aigw/internal/executorapi"
)

// TestOpenAPIDocumentCoversEveryRoute: every route the function registers
// (but its health check) is an operation of the OpenAPI document for the
// executors function, and every such operation is registered.
func TestOpenAPIDocumentCoversEveryRoute(t *testing.T) {
	t.Parallel()
	s := &Service{}
	_, patterns := s.handler()
	var served []string
	for _, p := range patterns {
		if p != "GET "+apispec.HealthPath {
			served = append(served, strings.Join(strings.Fields(p), " "))
		}
	}
	apispec.CheckRoutes(t, "executors", "the executors function", served)
}

// TestOpenAPISchemasMatchTheWireTypes: each schema has exactly the JSON
// fields of its executorapi type.
func TestOpenAPISchemasMatchTheWireTypes(t *testing.T) {
	for name, v := range map[string]any{
		"ExecutorCreate": executorapi.CreateRequest{}, "ExecutorCreated": executorapi.Created{},
		"ExecutorRegister": executorapi.Register{}, "ExecutorRegistered": executorapi.Registered{},
		"ExecutorClaim": executorapi.ClaimRequest{}, "ExecutorClaimed": executorapi.Claimed{}, "ExecutorJob": executorapi.Job{},
		"ExecutorHeartbeat": executorapi.Heartbeat{}, "ExecutorHeartbeatAnswer": executorapi.HeartbeatAnswer{},
		"ExecutorEvent": executorapi.Event{}, "ExecutorFinish": executorapi.Finish{}, "ExecutorFailure": executorapi.Failure{},
		"ExecutorFinished": executorapi.Finished{}, "ExecutorCredential": Credential{},
	} {
		apispec.CheckSchema(t, name, v)
	}
}
