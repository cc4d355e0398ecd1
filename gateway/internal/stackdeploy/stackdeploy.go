// Package stackdeploy deploys an OpenFaaS stack file (stack.yml) through the
// OpenFaaS API with github.com/openfaas/go-sdk, as `faas-cli deploy` does:
// secrets first (from files), then every function, then it waits until each
// has a ready replica. It works against aigw-gateway and any OpenFaaS.
package stackdeploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
	"github.com/openfaas/go-sdk/stack"
)

// Options says what to deploy where.
type Options struct {
	// StackFile is the path of stack.yml; ${VAR:-default} is substituted from
	// the environment.
	StackFile string
	// SecretsDir holds one file per secret the stack names (file name = secret
	// name). A secret missing there must already exist on the gateway.
	SecretsDir string
	// Env is added to every function's environment (after the stack's own).
	Env map[string]string
	// ReadyTimeout bounds the wait for every function's first ready replica.
	ReadyTimeout time.Duration
	Log          *slog.Logger
}

// Parse reads the stack file.
func Parse(file string) (*stack.Services, error) {
	s, err := stack.ParseYAMLFile(file, "", "", true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(s.Functions) == 0 {
		return nil, fmt.Errorf("%s: no functions", file)
	}
	return s, nil
}

// Deployment turns a stack function into the OpenFaaS deployment request.
func Deployment(name string, f stack.Function, extraEnv map[string]string) types.FunctionDeployment {
	env := map[string]string{}
	for k, v := range f.Environment {
		env[k] = v
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	d := types.FunctionDeployment{
		Service:     name,
		Image:       f.Image,
		Namespace:   f.Namespace,
		EnvProcess:  f.FProcess,
		EnvVars:     env,
		Secrets:     f.Secrets,
		Labels:      f.Labels,
		Annotations: f.Annotations,
	}
	if f.Constraints != nil {
		d.Constraints = *f.Constraints
	}
	if f.Limits != nil {
		d.Limits = &types.FunctionResources{Memory: f.Limits.Memory, CPU: f.Limits.CPU}
	}
	if f.Requests != nil {
		d.Requests = &types.FunctionResources{Memory: f.Requests.Memory, CPU: f.Requests.CPU}
	}
	return d
}

// Deploy deploys every function of the stack (sorted by name) and waits for them.
func Deploy(ctx context.Context, c *sdk.Client, o Options) error {
	s, err := Parse(o.StackFile)
	if err != nil {
		return err
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = time.Minute
	}
	names := make([]string, 0, len(s.Functions))
	secrets := map[string]bool{}
	for name, f := range s.Functions {
		names = append(names, name)
		for _, sec := range f.Secrets {
			secrets[sec] = true
		}
	}
	sort.Strings(names)
	if err := syncSecrets(ctx, c, o, secrets); err != nil {
		return err
	}
	for _, name := range names {
		d := Deployment(name, s.Functions[name], o.Env)
		status, err := c.Deploy(ctx, d)
		if err != nil {
			return fmt.Errorf("deploy %s (%s): %w", name, d.Image, err)
		}
		if status >= 300 {
			return fmt.Errorf("deploy %s (%s): gateway answered %d", name, d.Image, status)
		}
		o.Log.Info("deployed", "function", name, "image", d.Image, "status", status)
	}
	deadline := time.Now().Add(o.ReadyTimeout)
	for _, name := range names {
		if err := waitReady(ctx, c, name, s.Functions[name].Namespace, deadline); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes every function of the stack; one that is not there is fine.
func Remove(ctx context.Context, c *sdk.Client, file string) error {
	s, err := Parse(file)
	if err != nil {
		return err
	}
	var errs []error
	for name, f := range s.Functions {
		if err := c.DeleteFunction(ctx, name, f.Namespace); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func syncSecrets(ctx context.Context, c *sdk.Client, o Options, want map[string]bool) error {
	if o.SecretsDir == "" {
		return nil
	}
	existing, err := c.GetSecrets(ctx, "")
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	have := map[string]bool{}
	for _, s := range existing {
		have[s.Name] = true
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(o.SecretsDir, name))
		if errors.Is(err, os.ErrNotExist) {
			if !have[name] {
				return fmt.Errorf("secret %s: not on the gateway and no file %s", name, filepath.Join(o.SecretsDir, name))
			}
			continue
		}
		if err != nil {
			return err
		}
		spec := types.Secret{Name: name, Value: string(b)}
		var status int
		if have[name] {
			status, err = c.UpdateSecret(ctx, spec)
		} else {
			status, err = c.CreateSecret(ctx, spec)
		}
		if err != nil {
			return fmt.Errorf("secret %s: %w", name, err)
		}
		if status >= 300 {
			return fmt.Errorf("secret %s: gateway answered %d", name, status)
		}
	}
	return nil
}

func waitReady(ctx context.Context, c *sdk.Client, name, ns string, deadline time.Time) error {
	for {
		st, err := c.GetFunction(ctx, name, ns)
		if err == nil && st.AvailableReplicas > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("function %s not ready: %w", name, err)
			}
			return fmt.Errorf("function %s not ready: %d of %d replicas available", name, st.AvailableReplicas, st.Replicas)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// NewClient returns a go-sdk client for gateway with basic auth.
func NewClient(gateway, user, password string) (*sdk.Client, error) {
	u, err := parseURL(gateway)
	if err != nil {
		return nil, err
	}
	return sdk.NewClient(u, &sdk.BasicAuth{Username: user, Password: password}, &http.Client{Timeout: 2 * time.Minute}), nil
}
