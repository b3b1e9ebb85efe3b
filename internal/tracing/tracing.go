// Package tracing exports OpenTelemetry spans over OTLP/HTTP when an
// endpoint is configured, and does nothing otherwise: spans started before
// or without Setup go to OpenTelemetry's no-op provider.
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Config is the tracing section of a role's config.
type Config struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, e.g.
	// http://collector:4318; empty turns tracing off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
}

// Validate checks the endpoint URL; errors name the field (internal/fielderr).
func (c Config) Validate() error {
	if c.OTLPEndpoint == "" {
		return nil
	}
	u, err := url.Parse(c.OTLPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fielderr.New("otlp_endpoint", "%q is not an http(s) URL", c.OTLPEndpoint)
	}
	return nil
}

var (
	mu       sync.Mutex
	provider *sdktrace.TracerProvider
	users    int
)

// Setup starts exporting spans of this process for service. The provider is
// process-wide (OpenTelemetry's global); several roles in one process share
// it, and the last shutdown flushes it.
func Setup(c Config, service string) (shutdown func(context.Context) error, err error) {
	if c.OTLPEndpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if provider == nil {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(c.OTLPEndpoint+"/v1/traces"))
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		res := resource.NewSchemaless(semconv.ServiceName(service))
		provider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		otel.SetTracerProvider(provider)
	}
	users++
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		users--
		if users > 0 || provider == nil {
			return nil
		}
		err := provider.Shutdown(ctx)
		provider = nil
		return err
	}, nil
}

// Start begins a span named "swarmship.<name>".
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer("github.com/swarmship/swarmship").Start(ctx, "swarmship."+name, trace.WithAttributes(attrs...))
}

// End finishes span, recording err if any.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Release returns the common attributes of a release.
func Release(name, version, infoHash string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("release", name),
		attribute.String("version", version),
		attribute.String("infohash", infoHash),
	}
}
