// Package provider serves the OpenFaaS provider API (/system/*) with
// faas-provider's types: one file per route, each MakeXxxHandler(deps)
// returning an http.HandlerFunc, wired in Mount.
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/gateway/internal/fnregistry"
	"github.com/aigw/aigw/gateway/internal/procs"
	"github.com/aigw/aigw/gateway/internal/secrets"
	"github.com/aigw/aigw/internal/web"
)

// Functions is what the function routes need (fnregistry.Registry).
type Functions interface {
	Deploy(ctx context.Context, d types.FunctionDeployment) error
	Update(ctx context.Context, d types.FunctionDeployment) error
	Delete(ctx context.Context, name string) error
	Scale(ctx context.Context, name string, replicas int) error
	Status(name string) (types.FunctionStatus, error)
	List() []types.FunctionStatus
	Lookup(name string) (*fnregistry.Function, bool)
}

// Secrets is what /system/secrets needs (secrets.Store).
type Secrets interface {
	List() ([]string, error)
	Put(name string, value []byte, create bool) error
	Delete(name string) error
}

// Deps are the handlers' dependencies.
type Deps struct {
	Functions Functions
	Secrets   Secrets
	Version   string
	SHA       string
	Log       *slog.Logger
}

const maxRequestBody = 1 << 20

// decode reads a JSON request body into v.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err := dec.Decode(v); err != nil {
		return web.New(http.StatusBadRequest, fmt.Sprintf("request body: want JSON: %v", err), err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// toHTTP gives the domain errors their status; the message is the error's text.
func toHTTP(err error) error {
	status := 0
	switch {
	case errors.Is(err, fnregistry.ErrInvalid), errors.Is(err, secrets.ErrInvalidName):
		status = http.StatusBadRequest
	case errors.Is(err, fnregistry.ErrNotFound), errors.Is(err, secrets.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, secrets.ErrExists):
		status = http.StatusConflict
	case errors.Is(err, procs.ErrNotReady):
		// The function's processes started but never answered their health
		// check: an upstream failure, as a proxy reports one.
		status = http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		status = http.StatusGatewayTimeout
	default:
		return err
	}
	return web.New(status, err.Error(), err)
}
