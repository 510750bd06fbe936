// A small MCP client for the browser over streamable HTTP (session era). It talks to
// /ui/mcp/NAME, which the server forwards to the gateway as the signed-in user. Responses may
// be JSON or an event stream; notifications in a stream (progress, log messages) are handed
// to the caller as they arrive.

export const PROTOCOL_VERSION = '2025-06-18';
export const APPS_EXTENSION = 'io.modelcontextprotocol/ui';
export const APP_MIME = 'text/html;profile=mcp-app';

export class McpError extends Error {
  constructor(message, code, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

export class McpClient {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.nextId = 1;
    this.session = null;
    this.protocol = null;
  }

  headers() {
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    if (this.session) headers['mcp-session-id'] = this.session;
    if (this.protocol) headers['mcp-protocol-version'] = this.protocol;
    return headers;
  }

  async post(message) {
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: this.headers(),
      body: JSON.stringify(message),
    });
    const session = response.headers.get('mcp-session-id');
    if (session) this.session = session;
    return response;
  }

  // Sends a request and resolves with its result; `onNotification` sees every other message
  // of the response stream.
  async request(method, params = {}, onNotification = () => {}) {
    const id = this.nextId++;
    const response = await this.post({ jsonrpc: '2.0', id, method, params });
    const type = response.headers.get('content-type') || '';
    let answer = null;
    if (type.includes('text/event-stream')) {
      for await (const { data: message } of streamEvents(response)) {
        if (message.id === id && ('result' in message || 'error' in message)) {
          answer = message;
          break;
        }
        onNotification(message);
      }
    } else if (type.includes('application/json')) {
      answer = await response.json();
    } else {
      throw new McpError(`HTTP ${response.status}: ${await response.text()}`, response.status);
    }
    if (!answer) throw new McpError('the response ended without an answer', -32000);
    if (answer.error) throw new McpError(answer.error.message, answer.error.code, answer.error.data);
    return answer.result;
  }

  async notify(method, params = {}) {
    await this.post({ jsonrpc: '2.0', method, params });
  }

  async initialize() {
    const result = await this.request('initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: { extensions: { [APPS_EXTENSION]: { mimeTypes: [APP_MIME] } } },
      clientInfo: { name: 'skyport-inspector', version: '1' },
    });
    this.protocol = result.protocolVersion;
    await this.notify('notifications/initialized');
    return result;
  }

  // Every page of a list method (`tools/list` → `tools`).
  async listAll(method, key) {
    const items = [];
    let cursor;
    do {
      const page = await this.request(method, cursor ? { cursor } : {});
      items.push(...(page[key] || []));
      cursor = page.nextCursor;
    } while (cursor);
    return items;
  }
}

// The events of an event-stream response, in order: { type, data } with data parsed as JSON
// (type 'message' when the event names none). Shared with the chat view.
export async function* streamEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) yield { type, data: JSON.parse(data.join('\n')) };
    }
  }
}
