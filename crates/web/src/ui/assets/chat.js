// The chat view of an agent, or of one server (ChatMCP): sends a message to the chat
// endpoint (`/ui/api/agents/NAME/chat` or `/ui/api/servers/NAME/chat`, the API as the
// signed-in user), reads the answer's event stream (conversation, text, tool_call,
// tool_result, error, done) and shows it as it comes: the streamed text, each tool call with
// its arguments and result (collapsible), errors, and MCP Apps inline (apps.js, the app's
// resource read through `/ui/mcp/SERVER` as the Inspector does). The user's earlier
// conversations are listed beside it; continuing one sends its id.

import { McpClient, streamEvents } from 'skyport/mcp.js';
import { openApp } from 'skyport/apps.js';

const root = document.getElementById('chat');
const endpoint = root.dataset.endpoint;
const listUrl = root.dataset.conversations;
const log = document.getElementById('chat-log');
const form = document.getElementById('chat-form');
const input = document.getElementById('chat-message');
const status = document.getElementById('chat-status');
const list = document.getElementById('chat-conversations');
let conversation = null;

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

const pretty = (value) => {
  if (typeof value === 'string') {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
  }
  return JSON.stringify(value, null, 2);
};

function content(item) {
  switch (item.type) {
    case 'text':
      return el('pre', { class: 'text' }, pretty(item.text));
    case 'image':
      return el('img', { src: `data:${item.mimeType};base64,${item.data}`, alt: 'Image from the tool' });
    case 'audio':
      return el('audio', { controls: true, src: `data:${item.mimeType};base64,${item.data}` });
    case 'resource':
      return el('pre', {}, item.resource?.text ?? `resource ${item.resource?.uri}`);
    case 'resource_link':
      return el('p', {}, 'Link to ', el('code', {}, item.uri));
    default:
      return el('pre', {}, pretty(item));
  }
}

// One MCP connection per server whose apps are shown, opened on first use.
const clients = new Map();
async function mcpClient(server) {
  if (!clients.has(server)) {
    const client = new McpClient(`/ui/mcp/${encodeURIComponent(server)}`);
    clients.set(server, client.initialize().then(() => client));
  }
  return clients.get(server);
}

// The bubble of one turn of the conversation.
function bubble(role) {
  const node = el('div', { class: `message ${role}` }, el('span', { class: 'sr' }, role === 'user' ? 'You: ' : 'Answer: '));
  log.append(node);
  return node;
}

const calls = new Map();

function toolCall(event, into) {
  const result = el('div', { class: 'tool-result' }, el('p', { class: 'muted' }, 'Running…'));
  const node = el('details', { class: 'tool-call', open: true },
    el('summary', {}, 'Tool ', el('code', {}, event.tool || event.name), event.server ? ` on ${event.server}` : ''),
    el('p', { class: 'muted' }, 'Arguments'),
    el('pre', { class: 'json' }, pretty(event.arguments ?? {})),
    result);
  into.append(node);
  calls.set(event.id, { node, result, arguments: event.arguments ?? {}, tool: event.tool || event.name });
}

async function toolResult(event, into) {
  let call = calls.get(event.id);
  if (!call) {
    toolCall({ id: event.id, tool: event.tool, server: event.server, arguments: {} }, into);
    call = calls.get(event.id);
  }
  call.node.classList.toggle('failed', Boolean(event.is_error));
  call.result.replaceChildren(el('p', { class: event.is_error ? 'error' : 'ok' }, event.is_error ? 'Error' : 'Result'));
  for (const item of event.content || []) call.result.append(content(item));
  if (event.structured !== undefined && event.structured !== null) {
    call.result.append(el('details', {}, el('summary', {}, 'Structured content'), el('pre', { class: 'json' }, pretty(event.structured))));
  }
  if (event.app?.server && event.app?.uri) {
    const frame = el('div', { class: 'app' });
    into.append(frame);
    try {
      const client = await mcpClient(event.app.server);
      const view = await openApp(client, frame, event.app.uri, { name: call.tool }, call.arguments);
      view?.toolResult({ content: event.content || [], structuredContent: event.structured, isError: Boolean(event.is_error) });
    } catch (e) {
      frame.replaceChildren(el('p', { class: 'error', role: 'alert' }, `The app could not open: ${e.message}`));
    }
  }
}

async function send(message) {
  bubble('user').append(message);
  const answer = bubble('assistant');
  let text = null;
  status.textContent = 'Thinking…';
  form.querySelector('button').disabled = true;
  try {
    const body = conversation ? { message, conversation } : { message };
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const error = await response.json().catch(() => ({}));
      throw new Error(error.error?.message || `HTTP ${response.status}`);
    }
    for await (const { type, data } of streamEvents(response)) {
      if (type === 'conversation') {
        conversation = data.id;
      } else if (type === 'text') {
        if (!text) { text = el('p', { class: 'text' }); answer.append(text); }
        text.append(data.delta || '');
      } else if (type === 'tool_call') {
        text = null;
        toolCall(data, answer);
      } else if (type === 'tool_result') {
        text = null;
        await toolResult(data, answer);
      } else if (type === 'error') {
        answer.append(el('p', { class: 'error', role: 'alert' }, data.message));
      } else if (type === 'done') {
        status.textContent = data.stop === 'step_limit' ? 'Stopped at the step limit.' : data.stop === 'error' ? 'Stopped by an error.' : '';
      }
    }
  } catch (e) {
    answer.append(el('p', { class: 'error', role: 'alert' }, e.message));
    status.textContent = '';
  } finally {
    form.querySelector('button').disabled = false;
    loadConversations();
  }
}

// A stored provider-neutral message, as it was shown live.
function replay(message, into) {
  if (message.role === 'user') {
    bubble('user').append(message.text || '');
    return null;
  }
  if (message.role === 'tool') {
    toolResult({ id: message.tool_call_id, content: [{ type: 'text', text: message.text || '' }], is_error: message.is_error }, into || bubble('assistant'));
    return into;
  }
  const answer = into || bubble('assistant');
  if (message.text) answer.append(el('p', { class: 'text' }, message.text));
  for (const call of message.tool_calls || []) toolCall({ id: call.id, tool: call.name, arguments: call.arguments }, answer);
  return answer;
}

async function open(id) {
  const response = await fetch(`/ui/api/conversations/${encodeURIComponent(id)}`);
  if (!response.ok) {
    status.textContent = `The conversation could not be read (HTTP ${response.status}).`;
    return;
  }
  const body = await response.json();
  const messages = Array.isArray(body) ? body : body.messages || [];
  conversation = id;
  calls.clear();
  log.replaceChildren();
  let answer = null;
  for (const raw of messages) {
    const message = typeof raw === 'string' ? JSON.parse(raw) : raw;
    answer = message.role === 'user' ? replay(message, null) : replay(message, answer);
  }
  input.focus();
}

async function loadConversations() {
  const response = await fetch(listUrl);
  if (!response.ok) return;
  const body = await response.json();
  const items = Array.isArray(body) ? body : body.conversations || [];
  list.replaceChildren(...items.map((c) => el('li', {},
    el('button', { type: 'button', class: 'item', 'aria-current': c.id === conversation ? 'true' : null, onclick: () => open(c.id) }, c.title || c.id))));
}

document.getElementById('chat-new').addEventListener('click', () => {
  conversation = null;
  calls.clear();
  log.replaceChildren();
  status.textContent = '';
  input.focus();
});

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  input.value = '';
  send(message);
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

loadConversations();
