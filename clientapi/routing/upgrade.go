package routing

import "net/http"

func (rt *Routes) registerUpgrade(mux *http.ServeMux) {}
