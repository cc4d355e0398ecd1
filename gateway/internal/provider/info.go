package provider

import (
	"net/http"
	"runtime"

	"github.com/openfaas/faas-provider/types"

	"github.com/aigw/aigw/internal/web"
)

// GatewayInfo is /system/info in the OpenFaaS gateway's format (what faas-cli
// and go-sdk's GetInfo read), with the provider's own info nested.
type GatewayInfo struct {
	Arch     string             `json:"arch"`
	Provider types.ProviderInfo `json:"provider"`
	Version  types.VersionInfo  `json:"version"`
}

// ProviderName is how the gateway names itself in /system/info.
const ProviderName = "aigw-gateway"

// MakeInfoHandler serves GET /system/info.
func MakeInfoHandler(d Deps) http.HandlerFunc {
	return web.HandleNegotiated(d.Log, func(w http.ResponseWriter, r *http.Request) error {
		v := types.VersionInfo{Release: d.Version, SHA: d.SHA}
		return writeJSON(w, http.StatusOK, GatewayInfo{
			Arch:     runtime.GOARCH,
			Provider: types.ProviderInfo{Name: ProviderName, Orchestration: "process", Version: &v},
			Version:  v,
		})
	})
}
