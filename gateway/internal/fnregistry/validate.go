package fnregistry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/aigw/aigw/gateway/internal/procs"
)

var (
	// ErrInvalid marks a request the gateway cannot act on (HTTP 400).
	ErrInvalid = errors.New("invalid deployment")
	// ErrNotFound marks an unknown function (HTTP 404).
	ErrNotFound = errors.New("function not found")
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName checks a function name: a DNS-1123 label (lowercase letters,
// digits and '-', at most 63 characters), as Kubernetes and OpenFaaS require.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: function name is empty", ErrInvalid)
	case len(name) > 63:
		return fmt.Errorf("%w: function name %q is longer than 63 characters", ErrInvalid, name)
	case !dns1123Label.MatchString(name):
		return fmt.Errorf("%w: function name %q is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)", ErrInvalid, name)
	}
	return nil
}

// ValidNamespace accepts the one namespace the gateway has (or none).
func ValidNamespace(ns string) error {
	if ns != "" && ns != procs.Namespace {
		return fmt.Errorf("%w: namespace %q: this gateway has one namespace, %s", ErrInvalid, ns, procs.Namespace)
	}
	return nil
}

var binName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ImageBinary returns the executable an image names: the repository's basename,
// tag and digest stripped (ghcr.io/aigw/router:1.2.3 → <binDir>/router). It
// must exist and be executable.
func ImageBinary(binDir, image string) (string, error) {
	ref := strings.TrimSpace(image)
	if ref == "" {
		return "", fmt.Errorf("%w: image is empty", ErrInvalid)
	}
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	base := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.Index(base, ":"); i >= 0 {
		base = base[:i]
	}
	if !binName.MatchString(base) {
		return "", fmt.Errorf("%w: image %q does not name an executable (want e.g. ghcr.io/aigw/router:1.2.3 → %s/router)", ErrInvalid, image, binDir)
	}
	path := filepath.Join(binDir, base)
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: image %q resolves to %s, which does not exist (build it with `make build`, or set AIGW_GATEWAY_BIN_DIR)", ErrInvalid, image, path)
	case !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("%w: image %q resolves to %s, which is not an executable file", ErrInvalid, image, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return abs, nil
}
