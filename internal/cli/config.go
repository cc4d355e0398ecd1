package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/aigw/aigw/internal/envconf"
)

// Variables the CLI reads (the ones .aigw/demo.env sets, and the admin token).
const (
	EnvURL          = "AIGW_URL"
	EnvAuthURL      = "AIGW_AUTH_URL"
	EnvClientID     = "AIGW_CLIENT_ID"
	EnvClientSecret = "AIGW_CLIENT_SECRET"
)

// Profile is where the API is and the credentials to use.
type Profile struct {
	// URL is the router's base, e.g. http://127.0.0.1:8080/function/router.
	URL string `json:"url"`
	// AuthURL is the auth function's base, e.g. http://127.0.0.1:8080/function/auth.
	AuthURL      string `json:"auth_url"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// AdminToken gets operator tokens (algorithms register, dead letters).
	AdminToken string `json:"admin_token,omitempty"`
}

// ReadEnv reads the profile's variables; unset ones stay empty.
func ReadEnv(r *envconf.Reader) Profile {
	return Profile{
		URL:          strings.TrimRight(r.URL(EnvURL, ""), "/"),
		AuthURL:      strings.TrimRight(r.URL(EnvAuthURL, ""), "/"),
		ClientID:     r.String(EnvClientID, ""),
		ClientSecret: r.String(EnvClientSecret, ""),
		AdminToken:   r.String(envconf.EnvAdminToken, ""),
	}
}

// credentialsPath is the file aigw login writes: <user config dir>/aigw/credentials.json.
func credentialsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for the credentials: %w", err)
	}
	return filepath.Join(dir, "aigw", "credentials.json"), nil
}

// loadProfile is the stored profile (aigw login), overridden field by field
// by the environment's.
func loadProfile(env Profile) (Profile, error) {
	var p Profile
	path, err := credentialsPath()
	if err == nil {
		b, rerr := os.ReadFile(path)
		switch {
		case rerr == nil:
			if err := json.Unmarshal(b, &p); err != nil {
				return p, fmt.Errorf("%s: %v (run aigw login again)", path, err)
			}
		case !errors.Is(rerr, fs.ErrNotExist):
			return p, rerr
		}
	}
	if env.URL != "" {
		p.URL = env.URL
	}
	if env.AuthURL != "" {
		p.AuthURL = env.AuthURL
	}
	if env.ClientID != "" {
		p.ClientID, p.ClientSecret = env.ClientID, env.ClientSecret
	}
	if env.AdminToken != "" {
		p.AdminToken = env.AdminToken
	}
	if p.AuthURL == "" && p.URL != "" {
		// The gateway's layout: /function/router beside /function/auth.
		if base, ok := strings.CutSuffix(p.URL, "/function/router"); ok {
			p.AuthURL = base + "/function/auth"
		}
	}
	return p, nil
}

// check says what a profile lacks.
func (p Profile) check() error {
	if p.URL == "" || p.AuthURL == "" {
		return usageErrorf("no gateway: run aigw login --url URL, or set AIGW_URL and AIGW_AUTH_URL (set -a; . .aigw/demo.env; set +a)")
	}
	if p.ClientID == "" && p.AdminToken == "" {
		return usageErrorf("no credentials: run aigw login, or set AIGW_CLIENT_ID and AIGW_CLIENT_SECRET (or AIGW_ADMIN_TOKEN)")
	}
	return nil
}

// saveProfile writes p for later commands, readable by the user alone.
func saveProfile(p Profile) (string, error) {
	path, err := credentialsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}
