import http from 'k6/http';
import { check, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';

const errorRate = new Rate('errors');
const latency = new Trend('llm_latency');

export const options = {
  stages: [
    { duration: '2m', target: 10 },   // Ramp up
    { duration: '5m', target: 50 },   // Sustained load
    { duration: '2m', target: 100 },  // Peak
    { duration: '2m', target: 0 },    // Ramp down
  ],
  thresholds: {
    http_req_duration: ['p(95)<30000'],  // 95% under 30s
    errors: ['rate<0.01'],                // Error rate < 1%
  },
};

const BASE_URL = __ENV.GATEWAY_URL || 'http://ai.sklab.dev';
const TOKEN = __ENV.JWT_TOKEN;

export default function() {
  const payload = JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'user', content: 'Say hello in exactly 5 words.' }
    ],
    max_tokens: 20,
  });

  const params = {
    headers: {
      'Content-Type': 'application/json',
      'Authorization': `Bearer ${TOKEN}`,
    },
    timeout: '60s',
  };

  const start = Date.now();
  const res = http.post(`${BASE_URL}/openai/v1/chat/completions`, payload, params);
  const duration = Date.now() - start;

  latency.add(duration);

  const success = check(res, {
    'status is 200': (r) => r.status === 200,
    'has response': (r) => r.json('choices.0.message.content') !== undefined,
  });

  errorRate.add(!success);

  sleep(1);
}
