// Sends one agent run to an OTLP endpoint with the official OpenTelemetry JS SDK, the way a
// Node.js agent would: an invoke_agent span with a chat call (GenAI messages and usage), a
// tool call with arguments and result, and a tool call that fails.
//
//   node send_run.mjs grpc http://127.0.0.1:4317
//   node send_run.mjs http-proto http://127.0.0.1:4318/v1/traces
//   node send_run.mjs http-json http://127.0.0.1:4318/v1/traces
//
// Headers (the API key) come from OTEL_EXPORTER_OTLP_HEADERS, as for any OTel exporter.
// Prints {"trace_id": ...} once every span is exported.

import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

const [protocol, url] = process.argv.slice(2);
const exporters = { grpc: GrpcExporter, 'http-proto': ProtoExporter, 'http-json': JsonExporter };
if (!exporters[protocol] || !url) {
  console.error('usage: node send_run.mjs grpc|http-proto|http-json URL');
  process.exit(2);
}
const exporter = new exporters[protocol]({ url });
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'node-trip-planner' }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
provider.register();
const tracer = trace.getTracer('tracehouse-node-test', '1.0.0');
const conversation = process.env.CONVERSATION_ID || 'node-conversation';

const question = 'Find me a flight from Lisbon to Oslo on Friday.';
const answer = 'TP1234 leaves Lisbon at 09:05 and lands in Oslo at 14:10.';

const traceId = await tracer.startActiveSpan(
  'invoke_agent trip-planner',
  {
    kind: SpanKind.INTERNAL,
    attributes: {
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': 'trip-planner',
      'gen_ai.conversation.id': conversation,
      'user.id': 'node-user',
      'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: question }] }]),
    },
  },
  async (root) => {
    await tracer.startActiveSpan(
      'chat gpt-4o-mini',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': 'openai',
          'gen_ai.request.model': 'gpt-4o-mini',
          'gen_ai.response.model': 'gpt-4o-mini',
          'gen_ai.usage.input_tokens': 1200,
          'gen_ai.usage.output_tokens': 80,
          'gen_ai.input.messages': JSON.stringify([
            { role: 'user', parts: [{ type: 'text', content: question }] },
          ]),
          'gen_ai.output.messages': JSON.stringify([
            {
              role: 'assistant',
              parts: [
                {
                  type: 'tool_call',
                  id: 'call_1',
                  name: 'search_flights',
                  arguments: { from: 'LIS', to: 'OSL', day: 'friday' },
                },
              ],
              finish_reason: 'tool_calls',
            },
          ]),
        },
      },
      async (llm) => {
        llm.end();
      },
    );
    await tracer.startActiveSpan(
      'execute_tool search_flights',
      {
        attributes: {
          'gen_ai.operation.name': 'execute_tool',
          'gen_ai.tool.name': 'search_flights',
          'gen_ai.tool.call.id': 'call_1',
          'gen_ai.tool.call.arguments': JSON.stringify({ from: 'LIS', to: 'OSL', day: 'friday' }),
          'gen_ai.tool.call.result': JSON.stringify([{ flight: 'TP1234', departs: '09:05' }]),
        },
      },
      async (tool) => {
        tool.end();
      },
    );
    await tracer.startActiveSpan(
      'execute_tool book_hotel',
      { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'book_hotel' } },
      async (tool) => {
        const error = new Error('hotel service timed out');
        tool.recordException(error);
        tool.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
        tool.end();
      },
    );
    root.setAttribute(
      'gen_ai.output.messages',
      JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: answer }] }]),
    );
    root.end();
    return root.spanContext().traceId;
  },
);

await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ trace_id: traceId }));
