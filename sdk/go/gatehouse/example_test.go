package gatehouse_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/gatehouse-auth/gatehouse/sdk/go/gatehouse"
)

func ExampleNew() {
	ctx := context.Background() // cancel it to stop following the revocation feed
	gh, err := gatehouse.New(ctx, gatehouse.Config{
		Issuer:       "https://auth.example.com",
		Audience:     "api://orders",
		ClientID:     os.Getenv("GATEHOUSE_CLIENT_ID"),
		ClientSecret: os.Getenv("GATEHOUSE_CLIENT_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /hello", gh.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := gatehouse.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s\n", claims.Subject)
	})))
	log.Fatal(http.ListenAndServe("localhost:8081", mux))
}

func ExampleNewVerifier() {
	keys := gatehouse.NewRemoteKeySet("https://auth.example.com/.well-known/jwks.json", gatehouse.RemoteKeySetOptions{})
	feed := gatehouse.NewRevocationFeed("https://auth.example.com/v1/revocations",
		os.Getenv("GATEHOUSE_CLIENT_ID"), os.Getenv("GATEHOUSE_CLIENT_SECRET"), gatehouse.RevocationFeedOptions{})
	go feed.Run(context.Background())

	v, err := gatehouse.NewVerifier(gatehouse.VerifierConfig{
		Issuer:      "https://auth.example.com",
		Audience:    "api://orders",
		Keys:        keys,
		Revocations: feed,
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("GET /hello", gatehouse.Middleware(v)(http.NotFoundHandler()))
}
