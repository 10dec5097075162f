package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"go.yaml.in/yaml/v3"
)

// AppService is an application service registration file
// (application service API, "Registration").
type AppService struct {
	ID               string     `yaml:"id"`
	URL              *string    `yaml:"url"`
	ASToken          string     `yaml:"as_token"`
	HSToken          string     `yaml:"hs_token"`
	SenderLocalpart  string     `yaml:"sender_localpart"`
	RateLimited      *bool      `yaml:"rate_limited"`
	Protocols        []string   `yaml:"protocols"`
	Namespaces       Namespaces `yaml:"namespaces"`
	ReceiveEphemeral bool       `yaml:"receive_ephemeral"`
	// Path is the file the registration came from.
	Path string `yaml:"-"`
}

// Namespaces are the user ids, room aliases and room ids an application
// service claims.
type Namespaces struct {
	Users   []Namespace `yaml:"users"`
	Aliases []Namespace `yaml:"aliases"`
	Rooms   []Namespace `yaml:"rooms"`
}

// Namespace is one regular expression and whether the claim is exclusive.
type Namespace struct {
	Exclusive bool   `yaml:"exclusive"`
	Regex     string `yaml:"regex"`
}

// LoadAppServices reads and validates the registration files matching
// globs. Two registrations sharing an id or a token are an error, since
// tokens identify the service in both directions.
func LoadAppServices(globs []string) ([]AppService, error) {
	var paths []string
	for _, g := range globs {
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("app_services: bad pattern %q: %w", g, err)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	var out []AppService
	ids, tokens := map[string]string{}, map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("app_services: %w", err)
		}
		as, err := ParseAppService(data)
		if err != nil {
			return nil, fmt.Errorf("app_services: %s: %w", p, err)
		}
		as.Path = p
		if other, ok := ids[as.ID]; ok {
			return nil, fmt.Errorf("app_services: %s: id %q is also used by %s", p, as.ID, other)
		}
		for _, tok := range []string{as.ASToken, as.HSToken} {
			if other, ok := tokens[tok]; ok {
				return nil, fmt.Errorf("app_services: %s: a token is also used by %s", p, other)
			}
			tokens[tok] = p
		}
		ids[as.ID] = p
		out = append(out, as)
	}
	return out, nil
}

// ParseAppService decodes and validates one registration file.
func ParseAppService(data []byte) (AppService, error) {
	var as AppService
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&as); err != nil {
		return as, fmt.Errorf("invalid YAML: %w", err)
	}
	switch {
	case as.ID == "":
		return as, errors.New("id: missing")
	case as.ASToken == "":
		return as, errors.New("as_token: missing")
	case as.HSToken == "":
		return as, errors.New("hs_token: missing")
	case as.SenderLocalpart == "":
		return as, errors.New("sender_localpart: missing")
	case as.ASToken == as.HSToken:
		return as, errors.New("as_token and hs_token must differ")
	}
	for kind, list := range map[string][]Namespace{"users": as.Namespaces.Users, "aliases": as.Namespaces.Aliases, "rooms": as.Namespaces.Rooms} {
		for i, ns := range list {
			if _, err := regexp.Compile(ns.Regex); err != nil {
				return as, fmt.Errorf("namespaces.%s[%d].regex: %w", kind, i, err)
			}
		}
	}
	return as, nil
}
