package provider

import (
	"net/http"

	"github.com/openfaas/faas-provider/auth"
	"github.com/openfaas/faas-provider/types"
)

// Handlers returns the provider's handlers in faas-provider's FaaSHandlers;
// proxy is the /function/ handler.
func Handlers(d Deps, proxy http.HandlerFunc) *types.FaaSHandlers {
	return &types.FaaSHandlers{
		FunctionProxy:  proxy,
		FunctionLister: MakeListHandler(d),
		DeployFunction: MakeDeployHandler(d),
		UpdateFunction: MakeUpdateHandler(d),
		DeleteFunction: MakeDeleteHandler(d),
		FunctionStatus: MakeStatusHandler(d),
		ScaleFunction:  MakeScaleHandler(d),
		Secrets:        MakeSecretsHandler(d),
		Logs:           MakeLogsHandler(d),
		Info:           MakeInfoHandler(d),
		ListNamespaces: MakeNamespacesHandler(d),
		Health:         MakeHealthHandler(),
	}
}

// Mount registers the routes as faas-provider's bootstrap does, on a mux the
// gateway owns: /system/* behind basic auth, /function/* and /async-function/*
// open (functions check JWTs themselves), /healthz and /metrics open;
// targets is GET /system/metrics-targets (MakeMetricsTargetsHandler).
func Mount(mux *http.ServeMux, h *types.FaaSHandlers, creds *auth.BasicAuthCredentials, async, metrics, targets http.Handler) {
	sys := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, RequireBasicAuth(creds, f)) }
	sys("GET /system/functions", h.FunctionLister)
	sys("POST /system/functions", h.DeployFunction)
	sys("PUT /system/functions", h.UpdateFunction)
	sys("DELETE /system/functions", h.DeleteFunction)
	sys("GET /system/function/{name}", h.FunctionStatus)
	sys("POST /system/scale-function/{name}", h.ScaleFunction)
	sys("GET /system/info", h.Info)
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		sys(m+" /system/secrets", h.Secrets)
	}
	sys("GET /system/logs", h.Logs)
	sys("GET /system/namespaces", h.ListNamespaces)
	sys("GET /system/metrics-targets", targets.ServeHTTP)

	mux.Handle("/function/{name}", h.FunctionProxy)
	mux.Handle("/function/{name}/{path...}", h.FunctionProxy)
	mux.Handle("/async-function/{name}", async)
	mux.Handle("/async-function/{name}/{path...}", async)
	mux.Handle("GET /healthz", h.Health)
	mux.Handle("GET /metrics", metrics)
}
