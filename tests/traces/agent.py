"""An agent-like run instrumented with the real OpenTelemetry Python SDK, no
LLM needed: invoke_agent -> chat -> execute_tool, GenAI attributes, exported
with the SDK's OTLP/HTTP protobuf exporter (gzip) to Arbiter's /v1/traces.
Inside the tool call it proposes the action to Arbiter with the trace's id and
the tool call's id; a model call after it arrives later and must still attach.

    python agent.py URL AGENT_KEY   -> prints {"decision_id": ..., "trace_id": ...}
"""
import json
import sys
import urllib.request

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

url, key = sys.argv[1], sys.argv[2]
exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {key}"},
                            compression=Compression.Gzip)
provider = TracerProvider(resource=Resource.create({"service.name": "triage-agent"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("triage-agent")


def propose(trace_id, call_id, traceparent):
    body = {"action": {"name": "isolate_host", "confidence": 0.9,
                       "args": {"host": "srv-db-01", "host_tags": ["server"]},
                       "signals": {"alert_type": "malware", "alert_severity": "high"}},
            "trace_id": trace_id, "context": {"tool_call_id": call_id, "alert_id": "A-77"}}
    req = urllib.request.Request(f"{url}/v1/decisions", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                          "traceparent": traceparent})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


with tracer.start_as_current_span("invoke_agent triage", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"}) as root:
    trace_id = format(root.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("chat gpt-4.1", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4.1",
            "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 64,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Alert A-77: malware on srv-db-01"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "name": "isolate_host"}]}])}):
        pass
    with tracer.start_as_current_span("execute_tool isolate_host", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "isolate_host",
            "gen_ai.tool.call.id": "call_42", "gen_ai.tool.call.arguments": json.dumps({"host": "srv-db-01"})}) as tool:
        ctx = tool.get_span_context()
        decision = propose(trace_id, "call_42", f"00-{trace_id}-{format(ctx.span_id, '016x')}-01")
        tool.set_attribute("gen_ai.tool.call.result", json.dumps({"verdict": decision["verdict"]}))
    with tracer.start_as_current_span("chat gpt-4.1", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1", "error.type": "rate_limit"}) as late:
        late.set_status(Status(StatusCode.ERROR, "429 from the provider"))

provider.shutdown()
print(json.dumps({"decision_id": decision["id"], "trace_id": trace_id, "case_id": decision.get("case_id")}))
