package api

import (
	"context"
	"runtime/debug"
	"sync"

	"github.com/authzed/authzed-go/pkg/requestmeta"
	"github.com/authzed/authzed-go/pkg/responsemeta"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// VersionInfo says which kengen this is and which Authzed API it serves.
type VersionInfo struct {
	// Kengen is the version of the module the binary was built from: a release tag, or for a
	// build from a checkout the pseudo-version Go stamps from its commit (with +dirty when the
	// tree had changes); "(devel)" when the build carries no version at all.
	Kengen string `json:"kengen"`
	// Commit is the VCS revision the binary was built from, when Go stamped one.
	Commit string `json:"commit,omitempty"`
	// AuthzedAPI is the version of github.com/authzed/authzed-go, whose generated code defines
	// the Authzed v1 API this server speaks.
	AuthzedAPI string `json:"authzed_api"`
	// Go is the toolchain that built the binary.
	Go string `json:"go"`
}

// Version reads the binary's build information once.
var Version = sync.OnceValue(func() VersionInfo {
	v := VersionInfo{Kengen: "(devel)", AuthzedAPI: "unknown", Go: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Version != "" {
		v.Kengen = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v.Commit = s.Value
		}
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/authzed/authzed-go" {
			v.AuthzedAPI = d.Version
		}
	}
	return v
})

// serverVersionHeader is the value of SpiceDB's server-version response header.
func serverVersionHeader() string { return "kengen " + Version().Kengen }

// sendServerVersion answers a client that asks for the server's version the way SpiceDB does:
// the request carries io.spicedb.requestversion, the response headers io.spicedb.debug.version.
func sendServerVersion(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(string(requestmeta.RequestServerVersion))) == 0 {
		return
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(string(responsemeta.ServerVersion), serverVersionHeader()))
}
