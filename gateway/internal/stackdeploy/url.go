package stackdeploy

import (
	"fmt"
	"net/url"
)

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q: want http(s)://host:port", s)
	}
	return u, nil
}
