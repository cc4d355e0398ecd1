package hcloudfake

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds request bodies; cloud-init user data is at most 32 KiB.
const maxBody = 1 << 20

type protection struct {
	Delete  bool `json:"delete"`
	Rebuild bool `json:"rebuild,omitempty"`
}

type actionResource struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
}

type action struct {
	ID        int64            `json:"id"`
	Command   string           `json:"command"`
	Status    string           `json:"status"`
	Progress  int              `json:"progress"`
	Started   string           `json:"started"`
	Finished  *string          `json:"finished"`
	Error     *struct{}        `json:"error"`
	Resources []actionResource `json:"resources"`
}

type subnet struct {
	Type        string `json:"type"`
	IPRange     string `json:"ip_range"`
	NetworkZone string `json:"network_zone"`
	Gateway     string `json:"gateway,omitempty"`
	VSwitchID   int64  `json:"vswitch_id,omitempty"`
}

type route struct {
	Destination string `json:"destination"`
	Gateway     string `json:"gateway"`
}

type network struct {
	ID                    int64             `json:"id"`
	Name                  string            `json:"name"`
	Created               string            `json:"created"`
	IPRange               string            `json:"ip_range"`
	Subnets               []subnet          `json:"subnets"`
	Routes                []route           `json:"routes"`
	Servers               []int64           `json:"servers"`
	LoadBalancers         []int64           `json:"load_balancers"`
	Protection            protection        `json:"protection"`
	Labels                map[string]string `json:"labels"`
	ExposeRoutesToVSwitch bool              `json:"expose_routes_to_vswitch"`
}

type firewallRule struct {
	Direction      string   `json:"direction"`
	SourceIPs      []string `json:"source_ips"`
	DestinationIPs []string `json:"destination_ips"`
	Protocol       string   `json:"protocol"`
	Port           *string  `json:"port"`
	Description    *string  `json:"description"`
}

type firewallResource struct {
	Type          string `json:"type"`
	Server        *idRef `json:"server,omitempty"`
	LabelSelector *struct {
		Selector string `json:"selector"`
	} `json:"label_selector,omitempty"`
}

type idRef struct {
	ID int64 `json:"id"`
}

type firewall struct {
	ID        int64              `json:"id"`
	Name      string             `json:"name"`
	Labels    map[string]string  `json:"labels"`
	Created   string             `json:"created"`
	Rules     []firewallRule     `json:"rules"`
	AppliedTo []firewallResource `json:"applied_to"`
}

type sshKey struct {
	ID          int64             `json:"id"`
	Name        string            `json:"name"`
	Fingerprint string            `json:"fingerprint"`
	PublicKey   string            `json:"public_key"`
	Labels      map[string]string `json:"labels"`
	Created     string            `json:"created"`
}

type placementGroup struct {
	ID      int64             `json:"id"`
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Created string            `json:"created"`
	Servers []int64           `json:"servers"`
	Type    string            `json:"type"`
}

type serverFirewall struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
}

type publicIPv4 struct {
	ID      int64  `json:"id"`
	IP      string `json:"ip"`
	Blocked bool   `json:"blocked"`
	DNSPtr  string `json:"dns_ptr"`
}

type publicIPv6 struct {
	ID      int64  `json:"id"`
	IP      string `json:"ip"`
	Blocked bool   `json:"blocked"`
	DNSPtr  []any  `json:"dns_ptr"`
}

type publicNet struct {
	IPv4        *publicIPv4      `json:"ipv4"`
	IPv6        *publicIPv6      `json:"ipv6"`
	FloatingIPs []int64          `json:"floating_ips"`
	Firewalls   []serverFirewall `json:"firewalls"`
}

type privateNet struct {
	Network    int64    `json:"network"`
	IP         string   `json:"ip"`
	AliasIPs   []string `json:"alias_ips"`
	MACAddress string   `json:"mac_address"`
}

type server struct {
	ID              int64             `json:"id"`
	Name            string            `json:"name"`
	Status          string            `json:"status"`
	Created         string            `json:"created"`
	PublicNet       publicNet         `json:"public_net"`
	PrivateNet      []privateNet      `json:"private_net"`
	ServerType      serverType        `json:"server_type"`
	IncludedTraffic int64             `json:"included_traffic"`
	OutgoingTraffic *int64            `json:"outgoing_traffic"`
	IngoingTraffic  *int64            `json:"ingoing_traffic"`
	BackupWindow    *string           `json:"backup_window"`
	RescueEnabled   bool              `json:"rescue_enabled"`
	ISO             *struct{}         `json:"iso"`
	Locked          bool              `json:"locked"`
	Datacenter      any               `json:"datacenter"`
	Location        location          `json:"location"`
	Image           *image            `json:"image"`
	Protection      protection        `json:"protection"`
	Labels          map[string]string `json:"labels"`
	Volumes         []int64           `json:"volumes"`
	PrimaryDiskSize int               `json:"primary_disk_size"`
	PlacementGroup  *placementGroup   `json:"placement_group"`
	LoadBalancers   []int64           `json:"load_balancers"`

	userData string
}

// Fake is the fake API. It is an http.Handler serving paths under /v1.
// The zero value is not usable; call New.
type Fake struct {
	token string
	log   *slog.Logger
	now   func() time.Time
	mux   *http.ServeMux

	mu              sync.Mutex
	lastID          int64
	actions         map[int64]*action
	networks        map[int64]*network
	firewalls       map[int64]*firewall
	sshKeys         map[int64]*sshKey
	placementGroups map[int64]*placementGroup
	servers         map[int64]*server
}

// New returns a fake that accepts requests carrying "Authorization: Bearer
// token". A nil logger discards the request log.
func New(token string, logger *slog.Logger) *Fake {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Fake{
		token:           token,
		log:             logger,
		now:             time.Now,
		mux:             http.NewServeMux(),
		lastID:          1000,
		actions:         map[int64]*action{},
		networks:        map[int64]*network{},
		firewalls:       map[int64]*firewall{},
		sshKeys:         map[int64]*sshKey{},
		placementGroups: map[int64]*placementGroup{},
		servers:         map[int64]*server{},
	}
	f.routes()
	return f
}

// Counts reports how many of each resource exist, keyed by the API's
// collection name ("servers", "networks", ...). Tests use it to prove a
// destroy left nothing behind.
func (f *Fake) Counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]int{
		"networks":         len(f.networks),
		"firewalls":        len(f.firewalls),
		"ssh_keys":         len(f.sshKeys),
		"placement_groups": len(f.placementGroups),
		"servers":          len(f.servers),
	}
}

// apiError is an error the API reports to the client as
// {"error":{"code":..,"message":..}} with the given HTTP status.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errNotFound(what string, id int64) error {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("%s with ID %d not found", what, id)}
}

func errInvalid(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid_input", fmt.Sprintf(format, args...)}
}

func errUniqueness(what, name string) error {
	return &apiError{http.StatusConflict, "uniqueness_error", fmt.Sprintf("%s name %q is already used", what, name)}
}

type handlerFunc func(r *http.Request) (status int, body any, err error)

func (f *Fake) handle(pattern string, h handlerFunc) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = &apiError{http.StatusInternalServerError, "server_error", "internal error"}
				f.log.Error("handler failed", "path", r.URL.Path, "err", err)
			}
			status = ae.status
			body = map[string]any{"error": map[string]any{"code": ae.code, "message": ae.message, "details": nil}}
		}
		f.log.Info("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "status", status)
		if body == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if err := json.NewEncoder(w).Encode(body); err != nil {
			f.log.Warn("writing response", "err", err)
		}
	})
}

// ServeHTTP serves the API: loopback clients with the right token only.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !loopbackRemote(r.RemoteAddr) {
		http.Error(w, "loopback clients only", http.StatusForbidden)
		return
	}
	if !f.authorized(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"unable to authenticate","details":null}}`+"\n")
		return
	}
	f.mux.ServeHTTP(w, r)
}

func (f *Fake) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && f.token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(f.token)) == 1
}

// loopbackRemote reports whether a request's RemoteAddr is a loopback address.
// httptest's recorder uses "192.0.2.1:1234"; real listeners give ip:port.
func loopbackRemote(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func (f *Fake) routes() {
	f.handle("GET /v1/locations", f.listLocations)
	f.handle("GET /v1/server_types", f.listServerTypes)
	f.handle("GET /v1/server_types/{id}", f.getServerType)
	f.handle("GET /v1/images", f.listImages)
	f.handle("GET /v1/images/{id}", f.getImage)

	f.handle("GET /v1/actions", f.listActions)
	f.handle("GET /v1/actions/{id}", f.getAction)

	f.handle("GET /v1/networks", f.listNetworks)
	f.handle("POST /v1/networks", f.createNetwork)
	f.handle("GET /v1/networks/{id}", getOne(f, "network", f.network, deref))
	f.handle("PUT /v1/networks/{id}", f.updateNetwork)
	f.handle("DELETE /v1/networks/{id}", f.deleteNetwork)
	f.handle("POST /v1/networks/{id}/actions/add_subnet", f.addSubnet)
	f.handle("POST /v1/networks/{id}/actions/delete_subnet", f.deleteSubnet)

	f.handle("GET /v1/firewalls", f.listFirewalls)
	f.handle("POST /v1/firewalls", f.createFirewall)
	f.handle("GET /v1/firewalls/{id}", getOne(f, "firewall", f.firewall, deref))
	f.handle("PUT /v1/firewalls/{id}", rename(f, "firewall", f.firewall, func(x *firewall) (*string, *map[string]string) { return &x.Name, &x.Labels }, deref))
	f.handle("DELETE /v1/firewalls/{id}", f.deleteFirewall)
	f.handle("POST /v1/firewalls/{id}/actions/set_rules", f.setFirewallRules)
	f.handle("POST /v1/firewalls/{id}/actions/apply_to_resources", f.applyFirewall)
	f.handle("POST /v1/firewalls/{id}/actions/remove_from_resources", f.removeFirewall)

	f.handle("GET /v1/ssh_keys", f.listSSHKeys)
	f.handle("POST /v1/ssh_keys", f.createSSHKey)
	f.handle("GET /v1/ssh_keys/{id}", getOne(f, "ssh_key", f.sshKey, deref))
	f.handle("PUT /v1/ssh_keys/{id}", rename(f, "ssh_key", f.sshKey, func(x *sshKey) (*string, *map[string]string) { return &x.Name, &x.Labels }, deref))
	f.handle("DELETE /v1/ssh_keys/{id}", f.deleteSSHKey)

	f.handle("GET /v1/placement_groups", f.listPlacementGroups)
	f.handle("POST /v1/placement_groups", f.createPlacementGroup)
	f.handle("GET /v1/placement_groups/{id}", getOne(f, "placement_group", f.placementGroup, deref))
	f.handle("PUT /v1/placement_groups/{id}", rename(f, "placement_group", f.placementGroup, func(x *placementGroup) (*string, *map[string]string) { return &x.Name, &x.Labels }, deref))
	f.handle("DELETE /v1/placement_groups/{id}", f.deletePlacementGroup)

	f.handle("GET /v1/servers", f.listServers)
	f.handle("POST /v1/servers", f.createServer)
	f.handle("GET /v1/servers/{id}", getOne(f, "server", f.server, f.view))
	f.handle("PUT /v1/servers/{id}", rename(f, "server", f.server, func(x *server) (*string, *map[string]string) { return &x.Name, &x.Labels }, f.view))
	f.handle("DELETE /v1/servers/{id}", f.deleteServer)
	f.handle("POST /v1/servers/{id}/actions/{command}", f.serverAction)
	// Not in Hetzner's API (which never shows user_data again): what a server
	// would boot with, so tests can check the cloud-init Terraform sent.
	f.handle("GET /v1/servers/{id}/user_data", getOne(f, "user_data", f.server, func(s *server) string { return s.userData }))

	f.handle("/", func(r *http.Request) (int, any, error) {
		f.log.Warn("unsupported endpoint", "method", r.Method, "path", r.URL.Path)
		return 0, nil, &apiError{http.StatusNotFound, "not_found", "the fake does not serve " + r.Method + " " + r.URL.Path}
	})
}

// ---- helpers ---------------------------------------------------------------

func (f *Fake) stamp() string { return f.now().UTC().Format(time.RFC3339) }

func (f *Fake) nextID() int64 {
	f.lastID++
	return f.lastID
}

// newAction records a running action; it succeeds when first read.
func (f *Fake) newAction(command string, res ...actionResource) *action {
	a := &action{ID: f.nextID(), Command: command, Status: "running", Started: f.stamp(), Resources: res}
	if a.Resources == nil {
		a.Resources = []actionResource{}
	}
	f.actions[a.ID] = a
	c := *a
	return &c
}

func (f *Fake) observeAction(a *action) action {
	if a.Status == "running" {
		a.Status = "success"
		a.Progress = 100
		done := f.stamp()
		a.Finished = &done
	}
	return *a
}

// byPathID returns the resource of kind named by the request's {id} in m.
func byPathID[T any](r *http.Request, m map[int64]*T, kind string) (*T, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	v, ok := m[id]
	if !ok {
		return nil, errNotFound(kind, id)
	}
	return v, nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &apiError{http.StatusNotFound, "not_found", "invalid ID " + strconv.Quote(r.PathValue("id"))}
	}
	return id, nil
}

func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errInvalid("reading body: %v", err)
	}
	if len(body) > maxBody {
		return errInvalid("body too large")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &apiError{http.StatusBadRequest, "json_error", err.Error()}
	}
	return nil
}

// page applies ?page and ?per_page to a list and returns the meta block.
func page[T any](r *http.Request, all []T) ([]T, map[string]any) {
	perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if perPage <= 0 || perPage > 50 {
		perPage = 25
	}
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p <= 0 {
		p = 1
	}
	last := max(1, (len(all)+perPage-1)/perPage)
	lo, hi := min(len(all), (p-1)*perPage), min(len(all), p*perPage)
	pg := map[string]any{"page": p, "per_page": perPage, "previous_page": nil, "next_page": nil,
		"last_page": last, "total_entries": len(all)}
	if p > 1 {
		pg["previous_page"] = p - 1
	}
	if p < last {
		pg["next_page"] = p + 1
	}
	out := all[lo:hi]
	if out == nil {
		out = []T{}
	}
	return out, map[string]any{"pagination": pg}
}

func list[T any](r *http.Request, key string, all []T) (int, any, error) {
	items, meta := page(r, all)
	return http.StatusOK, map[string]any{key: items, "meta": meta}, nil
}

// sortedValues returns the map's values ordered by ID.
func sortedValues[T any](m map[int64]*T, keep func(*T) bool) []T {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := []T{}
	for _, id := range ids {
		if keep == nil || keep(m[id]) {
			out = append(out, *m[id])
		}
	}
	return out
}

func nameFilter(r *http.Request) (string, bool) {
	q := r.URL.Query()
	return q.Get("name"), q.Has("name")
}

func labelsOrEmpty(l *map[string]string) map[string]string {
	if l == nil || *l == nil {
		return map[string]string{}
	}
	return *l
}

func cloneLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

type updateRequest struct {
	Name   *string            `json:"name"`
	Labels *map[string]string `json:"labels"`
}

// getOne answers GET of one resource: found by the path's id under the lock,
// answered as {key: show(it)}.
func getOne[T any, V any](f *Fake, key string, find func(*http.Request) (*T, error), show func(*T) V) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		v, err := find(r)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{key: show(v)}, nil
	}
}

// rename answers a PUT that changes only the name and the labels of a resource
// (fields points at them), answered as GET answers it.
func rename[T any, V any](f *Fake, key string, find func(*http.Request) (*T, error),
	fields func(*T) (*string, *map[string]string), show func(*T) V) handlerFunc {
	return func(r *http.Request) (int, any, error) {
		var req updateRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		v, err := find(r)
		if err != nil {
			return 0, nil, err
		}
		req.apply(fields(v))
		return http.StatusOK, map[string]any{key: show(v)}, nil
	}
}

// deref shows a resource as it is stored.
func deref[T any](v *T) T { return *v }

// apply sets what a PUT changes of any resource: a non-empty name, the labels.
func (u updateRequest) apply(name *string, labels *map[string]string) {
	if u.Name != nil && *u.Name != "" {
		*name = *u.Name
	}
	if u.Labels != nil {
		*labels = labelsOrEmpty(u.Labels)
	}
}

// ---- catalog ---------------------------------------------------------------

func (f *Fake) listLocations(r *http.Request) (int, any, error) {
	out := locations
	if n, ok := nameFilter(r); ok {
		out = slices.DeleteFunc(slices.Clone(out), func(l location) bool { return l.Name != n })
	}
	return list(r, "locations", out)
}

func (f *Fake) listServerTypes(r *http.Request) (int, any, error) {
	out := serverTypes
	if n, ok := nameFilter(r); ok {
		out = slices.DeleteFunc(slices.Clone(out), func(t serverType) bool { return t.Name != n })
	}
	return list(r, "server_types", out)
}

func (f *Fake) getServerType(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	for _, t := range serverTypes {
		if t.ID == id {
			return http.StatusOK, map[string]any{"server_type": t}, nil
		}
	}
	return 0, nil, errNotFound("server type", id)
}

func (f *Fake) listImages(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	out := slices.DeleteFunc(slices.Clone(images), func(im image) bool {
		if q.Has("name") && im.Name != q.Get("name") {
			return true
		}
		if archs := q["architecture"]; len(archs) > 0 && !slices.Contains(archs, im.Architecture) {
			return true
		}
		if types := q["type"]; len(types) > 0 && !slices.Contains(types, im.Type) {
			return true
		}
		return false
	})
	return list(r, "images", out)
}

func (f *Fake) getImage(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	for _, im := range images {
		if im.ID == id {
			return http.StatusOK, map[string]any{"image": im}, nil
		}
	}
	return 0, nil, errNotFound("image", id)
}

// ---- actions ---------------------------------------------------------------

func (f *Fake) listActions(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []int64
	for _, s := range r.URL.Query()["id"] {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, nil, errInvalid("invalid action id %q", s)
		}
		ids = append(ids, id)
	}
	out := []action{}
	for _, a := range sortedValues(f.actions, func(a *action) bool { return len(ids) == 0 || slices.Contains(ids, a.ID) }) {
		out = append(out, f.observeAction(f.actions[a.ID]))
	}
	return list(r, "actions", out)
}

func (f *Fake) getAction(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.actions[id]
	if !ok {
		return 0, nil, errNotFound("action", id)
	}
	return http.StatusOK, map[string]any{"action": f.observeAction(a)}, nil
}

// ---- networks --------------------------------------------------------------

func (f *Fake) listNetworks(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, has := nameFilter(r)
	return list(r, "networks", sortedValues(f.networks, func(x *network) bool { return !has || x.Name == n }))
}

func (f *Fake) network(r *http.Request) (*network, error) { return byPathID(r, f.networks, "network") }

func (f *Fake) createNetwork(r *http.Request) (int, any, error) {
	var req struct {
		Name                  string             `json:"name"`
		IPRange               string             `json:"ip_range"`
		Subnets               []subnet           `json:"subnets"`
		Routes                []route            `json:"routes"`
		Labels                *map[string]string `json:"labels"`
		ExposeRoutesToVSwitch bool               `json:"expose_routes_to_vswitch"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Name == "" {
		return 0, nil, errInvalid("name is required")
	}
	for _, n := range f.networks {
		if n.Name == req.Name {
			return 0, nil, errUniqueness("network", req.Name)
		}
	}
	pfx, err := netip.ParsePrefix(req.IPRange)
	if err != nil || pfx.Masked() != pfx || !pfx.Addr().Is4() || !pfx.Addr().IsPrivate() || pfx.Bits() > 24 {
		return 0, nil, errInvalid("ip_range %q must be a private IPv4 CIDR of size /24 or larger", req.IPRange)
	}
	n := &network{
		ID: f.nextID(), Name: req.Name, Created: f.stamp(), IPRange: pfx.String(),
		Subnets: []subnet{}, Routes: []route{}, Servers: []int64{}, LoadBalancers: []int64{},
		Labels: labelsOrEmpty(req.Labels), ExposeRoutesToVSwitch: req.ExposeRoutesToVSwitch,
	}
	for _, s := range req.Subnets {
		if err := n.addSubnet(s); err != nil {
			return 0, nil, err
		}
	}
	if req.Routes != nil {
		n.Routes = req.Routes
	}
	f.networks[n.ID] = n
	return http.StatusCreated, map[string]any{"network": *n}, nil
}

func (n *network) addSubnet(s subnet) error {
	switch s.Type {
	case "cloud", "server", "vswitch":
	default:
		return errInvalid("subnet type %q is not one of cloud, server, vswitch", s.Type)
	}
	if s.Type == "vswitch" && s.VSwitchID == 0 {
		return errInvalid("vswitch_id is required for vswitch subnets")
	}
	if s.NetworkZone == "" {
		return errInvalid("network_zone is required")
	}
	outer := netip.MustParsePrefix(n.IPRange)
	pfx, err := netip.ParsePrefix(s.IPRange)
	if err != nil || pfx.Masked() != pfx || !outer.Contains(pfx.Addr()) || pfx.Bits() < outer.Bits() || pfx.Bits() > 30 {
		return errInvalid("subnet ip_range %q must be a CIDR inside %s", s.IPRange, n.IPRange)
	}
	for _, o := range n.Subnets {
		if netip.MustParsePrefix(o.IPRange).Overlaps(pfx) {
			return &apiError{http.StatusConflict, "conflict", fmt.Sprintf("subnet %s overlaps %s", pfx, o.IPRange)}
		}
	}
	s.IPRange = pfx.String()
	s.Gateway = outer.Addr().Next().String()
	n.Subnets = append(n.Subnets, s)
	return nil
}

func (f *Fake) updateNetwork(r *http.Request) (int, any, error) {
	var req struct {
		updateRequest
		ExposeRoutesToVSwitch *bool `json:"expose_routes_to_vswitch"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.network(r)
	if err != nil {
		return 0, nil, err
	}
	req.apply(&n.Name, &n.Labels)
	if req.ExposeRoutesToVSwitch != nil {
		n.ExposeRoutesToVSwitch = *req.ExposeRoutesToVSwitch
	}
	return http.StatusOK, map[string]any{"network": *n}, nil
}

func (f *Fake) deleteNetwork(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.network(r)
	if err != nil {
		return 0, nil, err
	}
	for _, sid := range n.Servers {
		if s, ok := f.servers[sid]; ok {
			s.PrivateNet = slices.DeleteFunc(s.PrivateNet, func(p privateNet) bool { return p.Network == n.ID })
		}
	}
	delete(f.networks, n.ID)
	return http.StatusNoContent, nil, nil
}

func (f *Fake) addSubnet(r *http.Request) (int, any, error) {
	var req subnet
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.network(r)
	if err != nil {
		return 0, nil, err
	}
	if err := n.addSubnet(req); err != nil {
		return 0, nil, err
	}
	a := f.newAction("add_subnet", actionResource{n.ID, "network"})
	return http.StatusCreated, map[string]any{"action": a}, nil
}

func (f *Fake) deleteSubnet(r *http.Request) (int, any, error) {
	var req struct {
		IPRange string `json:"ip_range"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.network(r)
	if err != nil {
		return 0, nil, err
	}
	i := slices.IndexFunc(n.Subnets, func(s subnet) bool { return s.IPRange == req.IPRange })
	if i < 0 {
		return 0, nil, &apiError{http.StatusNotFound, "not_found", "subnet " + req.IPRange + " not found"}
	}
	pfx := netip.MustParsePrefix(req.IPRange)
	for _, sid := range n.Servers {
		for _, p := range f.servers[sid].PrivateNet {
			if p.Network == n.ID && pfx.Contains(netip.MustParseAddr(p.IP)) {
				return 0, nil, &apiError{http.StatusConflict, "resource_in_use", fmt.Sprintf("subnet %s still has server %d", req.IPRange, sid)}
			}
		}
	}
	n.Subnets = slices.Delete(n.Subnets, i, i+1)
	a := f.newAction("delete_subnet", actionResource{n.ID, "network"})
	return http.StatusCreated, map[string]any{"action": a}, nil
}

// ---- firewalls -------------------------------------------------------------

func (f *Fake) listFirewalls(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, has := nameFilter(r)
	return list(r, "firewalls", sortedValues(f.firewalls, func(x *firewall) bool { return !has || x.Name == n }))
}

func (f *Fake) firewall(r *http.Request) (*firewall, error) {
	return byPathID(r, f.firewalls, "firewall")
}

func validateRules(rules []firewallRule) ([]firewallRule, error) {
	out := make([]firewallRule, 0, len(rules))
	for _, rule := range rules {
		if rule.Direction != "in" && rule.Direction != "out" {
			return nil, errInvalid("rule direction %q is not in or out", rule.Direction)
		}
		switch rule.Protocol {
		case "tcp", "udp":
			if rule.Port == nil || *rule.Port == "" {
				return nil, errInvalid("tcp and udp rules need a port")
			}
		case "icmp", "gre", "esp":
			if rule.Port != nil {
				return nil, errInvalid("%s rules take no port", rule.Protocol)
			}
		default:
			return nil, errInvalid("unknown protocol %q", rule.Protocol)
		}
		cidrs := rule.SourceIPs
		if rule.Direction == "out" {
			cidrs = rule.DestinationIPs
		}
		if len(cidrs) == 0 {
			return nil, errInvalid("an %s rule needs at least one address", rule.Direction)
		}
		for _, c := range append(slices.Clone(rule.SourceIPs), rule.DestinationIPs...) {
			if p, err := netip.ParsePrefix(c); err != nil || p.Masked() != p {
				return nil, errInvalid("%q is not a network CIDR", c)
			}
		}
		if rule.SourceIPs == nil {
			rule.SourceIPs = []string{}
		}
		if rule.DestinationIPs == nil {
			rule.DestinationIPs = []string{}
		}
		out = append(out, rule)
	}
	return out, nil
}

// applyFirewallTo links servers and a firewall; it returns one action per server.
func (f *Fake) applyFirewallTo(fw *firewall, res []firewallResource) ([]*action, error) {
	var acts []*action
	for _, x := range res {
		if x.Type != "server" || x.Server == nil {
			return nil, errInvalid("only server resources are supported by the fake")
		}
		s, ok := f.servers[x.Server.ID]
		if !ok {
			return nil, errNotFound("server", x.Server.ID)
		}
		if slices.ContainsFunc(s.PublicNet.Firewalls, func(sf serverFirewall) bool { return sf.ID == fw.ID }) {
			return nil, &apiError{http.StatusConflict, "firewall_already_applied", "firewall already applied"}
		}
		s.PublicNet.Firewalls = append(s.PublicNet.Firewalls, serverFirewall{ID: fw.ID, Status: "applied"})
		fw.AppliedTo = append(fw.AppliedTo, firewallResource{Type: "server", Server: &idRef{s.ID}})
		acts = append(acts, f.newAction("apply_firewall", actionResource{fw.ID, "firewall"}, actionResource{s.ID, "server"}))
	}
	return acts, nil
}

func (f *Fake) unlinkFirewall(fwID, serverID int64) {
	if s, ok := f.servers[serverID]; ok {
		s.PublicNet.Firewalls = slices.DeleteFunc(s.PublicNet.Firewalls, func(sf serverFirewall) bool { return sf.ID == fwID })
	}
	if fw, ok := f.firewalls[fwID]; ok {
		fw.AppliedTo = slices.DeleteFunc(fw.AppliedTo, func(x firewallResource) bool { return x.Server != nil && x.Server.ID == serverID })
	}
}

func (f *Fake) createFirewall(r *http.Request) (int, any, error) {
	var req struct {
		Name    string             `json:"name"`
		Labels  *map[string]string `json:"labels"`
		Rules   []firewallRule     `json:"rules"`
		ApplyTo []firewallResource `json:"apply_to"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Name == "" {
		return 0, nil, errInvalid("name is required")
	}
	for _, fw := range f.firewalls {
		if fw.Name == req.Name {
			return 0, nil, errUniqueness("firewall", req.Name)
		}
	}
	rules, err := validateRules(req.Rules)
	if err != nil {
		return 0, nil, err
	}
	fw := &firewall{ID: f.nextID(), Name: req.Name, Labels: labelsOrEmpty(req.Labels), Created: f.stamp(),
		Rules: rules, AppliedTo: []firewallResource{}}
	f.firewalls[fw.ID] = fw
	acts, err := f.applyFirewallTo(fw, req.ApplyTo)
	if err != nil {
		delete(f.firewalls, fw.ID)
		return 0, nil, err
	}
	acts = append(acts, f.newAction("set_firewall_rules", actionResource{fw.ID, "firewall"}))
	return http.StatusCreated, map[string]any{"firewall": *fw, "actions": acts}, nil
}

func (f *Fake) deleteFirewall(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, err := f.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	if len(fw.AppliedTo) > 0 {
		return 0, nil, &apiError{http.StatusConflict, "resource_in_use", "firewall is still applied to resources"}
	}
	delete(f.firewalls, fw.ID)
	return http.StatusNoContent, nil, nil
}

func (f *Fake) setFirewallRules(r *http.Request) (int, any, error) {
	var req struct {
		Rules []firewallRule `json:"rules"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, err := f.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	rules, err := validateRules(req.Rules)
	if err != nil {
		return 0, nil, err
	}
	fw.Rules = rules
	a := f.newAction("set_firewall_rules", actionResource{fw.ID, "firewall"})
	return http.StatusCreated, map[string]any{"actions": []*action{a}}, nil
}

func (f *Fake) applyFirewall(r *http.Request) (int, any, error) {
	var req struct {
		ApplyTo []firewallResource `json:"apply_to"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, err := f.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	acts, err := f.applyFirewallTo(fw, req.ApplyTo)
	if err != nil {
		return 0, nil, err
	}
	if acts == nil {
		acts = []*action{}
	}
	return http.StatusCreated, map[string]any{"actions": acts}, nil
}

func (f *Fake) removeFirewall(r *http.Request) (int, any, error) {
	var req struct {
		RemoveFrom []firewallResource `json:"remove_from"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, err := f.firewall(r)
	if err != nil {
		return 0, nil, err
	}
	acts := []*action{}
	for _, x := range req.RemoveFrom {
		if x.Type != "server" || x.Server == nil {
			return 0, nil, errInvalid("only server resources are supported by the fake")
		}
		f.unlinkFirewall(fw.ID, x.Server.ID)
		acts = append(acts, f.newAction("remove_firewall", actionResource{fw.ID, "firewall"}, actionResource{x.Server.ID, "server"}))
	}
	return http.StatusCreated, map[string]any{"actions": acts}, nil
}

// ---- SSH keys --------------------------------------------------------------

func (f *Fake) listSSHKeys(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, has := nameFilter(r)
	fp := r.URL.Query().Get("fingerprint")
	return list(r, "ssh_keys", sortedValues(f.sshKeys, func(k *sshKey) bool {
		return (!has || k.Name == n) && (fp == "" || k.Fingerprint == fp)
	}))
}

func (f *Fake) sshKey(r *http.Request) (*sshKey, error) { return byPathID(r, f.sshKeys, "ssh key") }

// fingerprint is the MD5 fingerprint of an authorized_keys line, as Hetzner
// reports it ("aa:bb:...").
func fingerprint(publicKey string) (string, error) {
	fields := strings.Fields(publicKey)
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "ssh-") && !strings.HasPrefix(fields[0], "ecdsa-") {
		return "", errInvalid("public_key is not an OpenSSH public key")
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return "", errInvalid("public_key is not an OpenSSH public key: %v", err)
	}
	sum := md5.Sum(blob)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join(parts, ":"), nil
}

func (f *Fake) createSSHKey(r *http.Request) (int, any, error) {
	var req struct {
		Name      string             `json:"name"`
		PublicKey string             `json:"public_key"`
		Labels    *map[string]string `json:"labels"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Name == "" {
		return 0, nil, errInvalid("name is required")
	}
	fp, err := fingerprint(req.PublicKey)
	if err != nil {
		return 0, nil, err
	}
	for _, k := range f.sshKeys {
		if k.Name == req.Name {
			return 0, nil, errUniqueness("ssh key", req.Name)
		}
		if k.Fingerprint == fp {
			return 0, nil, &apiError{http.StatusConflict, "uniqueness_error", "SSH key with the same fingerprint already exists"}
		}
	}
	k := &sshKey{ID: f.nextID(), Name: req.Name, Fingerprint: fp, PublicKey: strings.TrimSpace(req.PublicKey),
		Labels: labelsOrEmpty(req.Labels), Created: f.stamp()}
	f.sshKeys[k.ID] = k
	return http.StatusCreated, map[string]any{"ssh_key": *k}, nil
}

func (f *Fake) deleteSSHKey(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.sshKey(r)
	if err != nil {
		return 0, nil, err
	}
	delete(f.sshKeys, k.ID)
	return http.StatusNoContent, nil, nil
}

// ---- placement groups ------------------------------------------------------

func (f *Fake) listPlacementGroups(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, has := nameFilter(r)
	return list(r, "placement_groups", sortedValues(f.placementGroups, func(p *placementGroup) bool { return !has || p.Name == n }))
}

func (f *Fake) placementGroup(r *http.Request) (*placementGroup, error) {
	return byPathID(r, f.placementGroups, "placement group")
}

func (f *Fake) createPlacementGroup(r *http.Request) (int, any, error) {
	var req struct {
		Name   string             `json:"name"`
		Labels *map[string]string `json:"labels"`
		Type   string             `json:"type"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Name == "" {
		return 0, nil, errInvalid("name is required")
	}
	if req.Type != "spread" {
		return 0, nil, errInvalid("placement group type %q is not spread", req.Type)
	}
	for _, p := range f.placementGroups {
		if p.Name == req.Name {
			return 0, nil, errUniqueness("placement group", req.Name)
		}
	}
	p := &placementGroup{ID: f.nextID(), Name: req.Name, Labels: labelsOrEmpty(req.Labels), Created: f.stamp(),
		Servers: []int64{}, Type: req.Type}
	f.placementGroups[p.ID] = p
	return http.StatusCreated, map[string]any{"placement_group": *p, "action": nil}, nil
}

func (f *Fake) deletePlacementGroup(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.placementGroup(r)
	if err != nil {
		return 0, nil, err
	}
	if len(p.Servers) > 0 {
		return 0, nil, &apiError{http.StatusConflict, "resource_in_use", "placement group still has servers"}
	}
	delete(f.placementGroups, p.ID)
	return http.StatusNoContent, nil, nil
}

// ---- servers ---------------------------------------------------------------

// view returns the server as the API shows it (placement group embedded fresh).
func (f *Fake) view(s *server) server {
	v := *s
	v.Labels = cloneLabels(s.Labels)
	v.PrivateNet = slices.Clone(s.PrivateNet)
	v.PublicNet.Firewalls = slices.Clone(s.PublicNet.Firewalls)
	if s.PlacementGroup != nil {
		if p, ok := f.placementGroups[s.PlacementGroup.ID]; ok {
			c := *p
			v.PlacementGroup = &c
		} else {
			v.PlacementGroup = nil
		}
	}
	return v
}

func (f *Fake) listServers(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, has := nameFilter(r)
	out := []server{}
	for _, s := range sortedValues(f.servers, func(s *server) bool { return !has || s.Name == n }) {
		out = append(out, f.view(f.servers[s.ID]))
	}
	return list(r, "servers", out)
}

func (f *Fake) server(r *http.Request) (*server, error) { return byPathID(r, f.servers, "server") }

// idOrName decodes a JSON number or string the way the API accepts them.
type idOrName struct {
	ID   int64
	Name string
}

func (o *idOrName) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case float64:
		o.ID = int64(t)
	case string:
		if id, err := strconv.ParseInt(t, 10, 64); err == nil {
			o.ID = id
		} else {
			o.Name = t
		}
	default:
		return fmt.Errorf("want an ID or a name, got %s", b)
	}
	return nil
}

func (f *Fake) createServer(r *http.Request) (int, any, error) {
	var req struct {
		Name             string             `json:"name"`
		ServerType       idOrName           `json:"server_type"`
		Image            idOrName           `json:"image"`
		SSHKeys          []int64            `json:"ssh_keys"`
		Location         string             `json:"location"`
		Datacenter       string             `json:"datacenter"`
		UserData         string             `json:"user_data"`
		StartAfterCreate *bool              `json:"start_after_create"`
		Labels           *map[string]string `json:"labels"`
		Volumes          []int64            `json:"volumes"`
		Networks         []int64            `json:"networks"`
		Firewalls        []struct {
			Firewall int64 `json:"firewall"`
		} `json:"firewalls"`
		PlacementGroup int64 `json:"placement_group"`
		PublicNet      *struct {
			EnableIPv4 bool  `json:"enable_ipv4"`
			EnableIPv6 bool  `json:"enable_ipv6"`
			IPv4       int64 `json:"ipv4"`
			IPv6       int64 `json:"ipv6"`
		} `json:"public_net"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()

	if req.Name == "" || len(req.Name) > 63 {
		return 0, nil, errInvalid("name must be 1 to 63 characters")
	}
	for _, s := range f.servers {
		if s.Name == req.Name {
			return 0, nil, errUniqueness("server", req.Name)
		}
	}
	if len(req.UserData) > 32*1024 {
		return 0, nil, errInvalid("user_data is longer than 32 KiB")
	}
	ti := slices.IndexFunc(serverTypes, func(t serverType) bool {
		return t.ID == req.ServerType.ID || req.ServerType.Name != "" && t.Name == req.ServerType.Name
	})
	if ti < 0 {
		return 0, nil, errInvalid("unknown server_type")
	}
	st := serverTypes[ti]
	ii := slices.IndexFunc(images, func(im image) bool {
		return im.ID == req.Image.ID || req.Image.Name != "" && im.Name == req.Image.Name && im.Architecture == st.Architecture
	})
	if ii < 0 {
		return 0, nil, errInvalid("unknown image")
	}
	im := images[ii]
	if im.Architecture != st.Architecture {
		return 0, nil, errInvalid("image architecture %s does not match server type %s", im.Architecture, st.Architecture)
	}
	loc := locations[0]
	if req.Location != "" {
		li := slices.IndexFunc(locations, func(l location) bool { return l.Name == req.Location })
		if li < 0 {
			return 0, nil, errInvalid("unknown location %q", req.Location)
		}
		loc = locations[li]
	}
	for _, k := range req.SSHKeys {
		if _, ok := f.sshKeys[k]; !ok {
			return 0, nil, errInvalid("unknown ssh key %d", k)
		}
	}
	for _, fw := range req.Firewalls {
		if _, ok := f.firewalls[fw.Firewall]; !ok {
			return 0, nil, errInvalid("unknown firewall %d", fw.Firewall)
		}
	}
	var pg *placementGroup
	if req.PlacementGroup != 0 {
		p, ok := f.placementGroups[req.PlacementGroup]
		if !ok {
			return 0, nil, errInvalid("unknown placement group %d", req.PlacementGroup)
		}
		if len(p.Servers) >= 10 {
			return 0, nil, &apiError{http.StatusConflict, "placement_error", "spread placement group is full"}
		}
		pg = p
	}
	if len(req.Networks) > 0 || len(req.Volumes) > 0 {
		return 0, nil, errInvalid("the fake supports networks through attach_to_network only, and no volumes")
	}
	ipv4, ipv6 := true, true
	if req.PublicNet != nil {
		ipv4, ipv6 = req.PublicNet.EnableIPv4, req.PublicNet.EnableIPv6
		if req.PublicNet.IPv4 != 0 || req.PublicNet.IPv6 != 0 {
			return 0, nil, errInvalid("the fake does not support existing primary IPs")
		}
	}

	id := f.nextID()
	s := &server{
		ID: id, Name: req.Name, Status: "running", Created: f.stamp(),
		PrivateNet: []privateNet{}, ServerType: st, IncludedTraffic: st.IncludedTraffic,
		Location: loc, Image: &im, Labels: labelsOrEmpty(req.Labels), Volumes: []int64{},
		LoadBalancers: []int64{}, PrimaryDiskSize: st.Disk, userData: req.UserData,
		Datacenter: map[string]any{"id": loc.ID, "name": loc.Name + "-dc14", "description": loc.Description, "location": loc},
	}
	s.PublicNet.FloatingIPs = []int64{}
	s.PublicNet.Firewalls = []serverFirewall{}
	if ipv4 {
		// 203.0.113.0/24 is TEST-NET-3: never routed, safe for a fake.
		s.PublicNet.IPv4 = &publicIPv4{ID: f.nextID(), IP: fmt.Sprintf("203.0.113.%d", id%250+1), DNSPtr: "static.example"}
	}
	if ipv6 {
		s.PublicNet.IPv6 = &publicIPv6{ID: f.nextID(), IP: fmt.Sprintf("2001:db8:%x::/64", id), DNSPtr: []any{}}
	}
	if req.StartAfterCreate != nil && !*req.StartAfterCreate {
		s.Status = "off"
	}
	f.servers[id] = s
	ref := actionResource{id, "server"}
	for _, fw := range req.Firewalls {
		if _, err := f.applyFirewallTo(f.firewalls[fw.Firewall], []firewallResource{{Type: "server", Server: &idRef{id}}}); err != nil {
			return 0, nil, err
		}
	}
	if pg != nil {
		pg.Servers = append(pg.Servers, id)
		s.PlacementGroup = &placementGroup{ID: pg.ID}
	}
	create := f.newAction("create_server", ref)
	next := []*action{}
	if s.Status == "running" {
		next = append(next, f.newAction("start_server", ref))
	}
	return http.StatusCreated, map[string]any{
		"server": f.view(s), "action": create, "next_actions": next, "root_password": nil,
	}, nil
}

func (f *Fake) deleteServer(r *http.Request) (int, any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.server(r)
	if err != nil {
		return 0, nil, err
	}
	for _, sf := range slices.Clone(s.PublicNet.Firewalls) {
		f.unlinkFirewall(sf.ID, s.ID)
	}
	for _, p := range s.PrivateNet {
		if n, ok := f.networks[p.Network]; ok {
			n.Servers = slices.DeleteFunc(n.Servers, func(id int64) bool { return id == s.ID })
		}
	}
	if s.PlacementGroup != nil {
		if p, ok := f.placementGroups[s.PlacementGroup.ID]; ok {
			p.Servers = slices.DeleteFunc(p.Servers, func(id int64) bool { return id == s.ID })
		}
	}
	delete(f.servers, s.ID)
	a := f.newAction("delete_server", actionResource{s.ID, "server"})
	return http.StatusOK, map[string]any{"action": a}, nil
}

func (f *Fake) serverAction(r *http.Request) (int, any, error) {
	command := r.PathValue("command")
	var req struct {
		Network  int64     `json:"network"`
		IP       *string   `json:"ip"`
		AliasIPs []*string `json:"alias_ips"`
		IPRange  *string   `json:"ip_range"`
	}
	switch command {
	case "attach_to_network", "detach_from_network", "change_alias_ips":
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
	case "poweron", "poweroff", "shutdown", "reboot", "reset":
	default:
		return 0, nil, &apiError{http.StatusNotFound, "not_found", "the fake does not support server action " + command}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.server(r)
	if err != nil {
		return 0, nil, err
	}
	ref := actionResource{s.ID, "server"}
	switch command {
	case "poweron", "reboot", "reset":
		s.Status = "running"
		return http.StatusCreated, map[string]any{"action": f.newAction("start_server", ref)}, nil
	case "poweroff", "shutdown":
		s.Status = "off"
		return http.StatusCreated, map[string]any{"action": f.newAction("stop_server", ref)}, nil
	}
	n, ok := f.networks[req.Network]
	if !ok {
		return 0, nil, errNotFound("network", req.Network)
	}
	i := slices.IndexFunc(s.PrivateNet, func(p privateNet) bool { return p.Network == n.ID })
	switch command {
	case "attach_to_network":
		if i >= 0 {
			return 0, nil, &apiError{http.StatusConflict, "server_already_attached", "server is already attached to this network"}
		}
		ip, err := f.pickIP(n, req.IP, req.IPRange)
		if err != nil {
			return 0, nil, err
		}
		aliases := []string{}
		for _, a := range req.AliasIPs {
			if a != nil {
				aliases = append(aliases, *a)
			}
		}
		s.PrivateNet = append(s.PrivateNet, privateNet{Network: n.ID, IP: ip, AliasIPs: aliases,
			MACAddress: fmt.Sprintf("86:00:00:%02x:%02x:%02x", byte(s.ID>>16), byte(s.ID>>8), byte(s.ID))})
		n.Servers = append(n.Servers, s.ID)
		a := f.newAction("attach_to_network", ref, actionResource{n.ID, "network"})
		return http.StatusCreated, map[string]any{"action": a}, nil
	case "detach_from_network":
		if i < 0 {
			return 0, nil, &apiError{http.StatusConflict, "server_not_attached", "server is not attached to this network"}
		}
		s.PrivateNet = slices.Delete(s.PrivateNet, i, i+1)
		n.Servers = slices.DeleteFunc(n.Servers, func(id int64) bool { return id == s.ID })
		a := f.newAction("detach_from_network", ref, actionResource{n.ID, "network"})
		return http.StatusCreated, map[string]any{"action": a}, nil
	default: // change_alias_ips
		if i < 0 {
			return 0, nil, &apiError{http.StatusConflict, "server_not_attached", "server is not attached to this network"}
		}
		aliases := []string{}
		for _, a := range req.AliasIPs {
			if a != nil {
				aliases = append(aliases, *a)
			}
		}
		s.PrivateNet[i].AliasIPs = aliases
		a := f.newAction("change_alias_ips", ref, actionResource{n.ID, "network"})
		return http.StatusCreated, map[string]any{"action": a}, nil
	}
}

// pickIP validates a requested private IP (inside a cloud subnet of the
// network, not the gateway, not taken) or picks the first free one.
func (f *Fake) pickIP(n *network, want, ipRange *string) (string, error) {
	taken := map[netip.Addr]bool{}
	for _, sid := range n.Servers {
		for _, p := range f.servers[sid].PrivateNet {
			if p.Network == n.ID {
				taken[netip.MustParseAddr(p.IP)] = true
			}
		}
	}
	var subnets []netip.Prefix
	for _, sn := range n.Subnets {
		if sn.Type != "vswitch" {
			subnets = append(subnets, netip.MustParsePrefix(sn.IPRange))
		}
	}
	if ipRange != nil && *ipRange != "" {
		p, err := netip.ParsePrefix(*ipRange)
		if err != nil {
			return "", errInvalid("invalid ip_range %q", *ipRange)
		}
		subnets = slices.DeleteFunc(subnets, func(s netip.Prefix) bool { return s != p.Masked() })
	}
	if len(subnets) == 0 {
		return "", &apiError{http.StatusConflict, "no_subnet_available", "the network has no subnet for servers"}
	}
	gateway := netip.MustParsePrefix(n.IPRange).Addr().Next()
	if want != nil && *want != "" {
		ip, err := netip.ParseAddr(*want)
		if err != nil {
			return "", errInvalid("invalid ip %q", *want)
		}
		if !slices.ContainsFunc(subnets, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return "", errInvalid("ip %s is not inside a subnet of network %d", ip, n.ID)
		}
		if ip == gateway || taken[ip] {
			return "", &apiError{http.StatusConflict, "ip_not_available", fmt.Sprintf("ip %s is not available", ip)}
		}
		return ip.String(), nil
	}
	for _, p := range subnets {
		for ip := p.Addr().Next(); p.Contains(ip); ip = ip.Next() {
			if ip != gateway && !taken[ip] {
				return ip.String(), nil
			}
		}
	}
	return "", &apiError{http.StatusConflict, "ip_not_available", "no free IP left"}
}
