module github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse

go 1.26.0

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	golang.org/x/sync v0.24.0
)
