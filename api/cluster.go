package api

import "google.golang.org/grpc"

// RegisterService registers another gRPC service (raftnode's cluster service) on the
// server, behind the same authentication, metrics and error interceptors. Call it before
// Serve.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}
