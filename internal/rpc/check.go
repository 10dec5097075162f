package rpc

import (
	"reflect"
)

// Unserved returns the methods of the interface type api that s does not
// serve under "<component>.<Method>": a test calls it so that a method added
// to an API cannot be forgotten in its transport.
func Unserved(api reflect.Type, component string, s *Server) []string {
	served := map[string]bool{}
	for _, n := range s.Names() {
		served[n] = true
	}
	var missing []string
	for i := range api.NumMethod() {
		name := component + "." + api.Method(i).Name
		if !served[name] {
			missing = append(missing, name)
		}
	}
	return missing
}
