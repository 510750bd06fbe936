// The Inspector: lists a server's tools, resources, templates and prompts through the
// gateway, builds a form from each tool's JSON schema, calls it and shows the result (text,
// JSON, images, embedded resources, errors) with its timing and the progress and log
// notifications that arrived meanwhile. Tools with an MCP App open it (apps.js).

import { McpClient } from 'skyport/mcp.js';
import { openApp } from 'skyport/apps.js';

const root = document.getElementById('inspector');
const server = root.dataset.server;
const client = new McpClient(`/ui/mcp/${encodeURIComponent(server)}`);
const status = document.getElementById('inspector-status');
const detail = document.getElementById('detail');

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

let fieldIds = 0;

// A form field for `schema`: { node, read() } where read() gives the value (undefined: left out).
function field(schema = {}, label, required) {
  const id = `f${++fieldIds}`;
  const variants = (schema.anyOf || schema.oneOf || []).filter((s) => s.type !== 'null');
  if (!schema.type && variants.length === 1) schema = { ...variants[0], description: schema.description, default: schema.default };
  const title = el('label', { for: id }, label, required ? ' *' : '', schema.description ? el('small', {}, ` ${schema.description}`) : null);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (schema.enum) {
    const select = el('select', { id }, required ? null : el('option', { value: '' }, '—'),
      ...schema.enum.map((v, i) => el('option', { value: i }, String(v))));
    return { node: el('div', { class: 'field' }, title, select), read: () => (select.value === '' ? undefined : schema.enum[+select.value]) };
  }
  if (type === 'boolean') {
    const box = el('input', { id, type: 'checkbox', checked: schema.default === true });
    return { node: el('div', { class: 'field check' }, box, title), read: () => box.checked };
  }
  if (type === 'number' || type === 'integer') {
    const input = el('input', { id, type: 'number', step: type === 'integer' ? '1' : 'any', required, value: schema.default ?? undefined });
    return { node: el('div', { class: 'field' }, title, input), read: () => (input.value === '' ? undefined : Number(input.value)) };
  }
  if (type === 'object' && schema.properties) {
    const parts = Object.entries(schema.properties).map(([k, s]) => [k, field(s, k, (schema.required || []).includes(k))]);
    const set = el('fieldset', { class: 'field' }, el('legend', {}, label, required ? ' *' : ''), ...parts.map(([, f]) => f.node));
    return {
      node: set,
      read: () => {
        const out = {};
        for (const [k, f] of parts) {
          const v = f.read();
          if (v !== undefined) out[k] = v;
        }
        return Object.keys(out).length || required ? out : undefined;
      },
    };
  }
  if (type === 'array' && schema.items && !Array.isArray(schema.items)) {
    const items = [];
    const list = el('div', { class: 'array' });
    const add = () => {
      const f = field(schema.items, `${label}[${items.length}]`, true);
      const row = el('div', { class: 'item' }, f.node);
      const entry = { f, row };
      row.append(el('button', { type: 'button', class: 'small', onclick: () => { items.splice(items.indexOf(entry), 1); row.remove(); } }, 'Remove'));
      items.push(entry);
      list.append(row);
    };
    const set = el('fieldset', { class: 'field' }, el('legend', {}, label, required ? ' *' : ''), list,
      el('button', { type: 'button', class: 'small', onclick: add }, `Add ${label} item`));
    return { node: set, read: () => (items.length || required ? items.map((i) => i.f.read()) : undefined) };
  }
  if (type === 'string') {
    const input = el('input', { id, required, value: schema.default ?? undefined });
    return { node: el('div', { class: 'field' }, title, input), read: () => (input.value === '' && !required ? undefined : input.value) };
  }
  // Anything else (unions, free objects): JSON typed by hand.
  const area = el('textarea', { id, rows: 3, placeholder: 'JSON' });
  return {
    node: el('div', { class: 'field' }, title, area),
    read: () => (area.value.trim() === '' ? undefined : JSON.parse(area.value)),
  };
}

function renderContent(item) {
  switch (item.type) {
    case 'text': {
      try {
        return el('pre', { class: 'json' }, JSON.stringify(JSON.parse(item.text), null, 2));
      } catch {
        return el('pre', { class: 'text' }, item.text);
      }
    }
    case 'image':
      return el('img', { src: `data:${item.mimeType};base64,${item.data}`, alt: 'Image from the tool' });
    case 'audio':
      return el('audio', { controls: true, src: `data:${item.mimeType};base64,${item.data}` });
    case 'resource': {
      const r = item.resource;
      return el('div', { class: 'embedded' }, el('p', {}, 'Resource ', el('code', {}, r.uri), ` (${r.mimeType || 'unknown type'})`),
        'text' in r ? el('pre', {}, r.text) : el('p', {}, `${(r.blob || '').length} base64 characters`));
    }
    case 'resource_link':
      return el('p', {}, 'Link to ', el('code', {}, item.uri));
    default:
      return el('pre', {}, JSON.stringify(item, null, 2));
  }
}

function renderResult(box, result, ms) {
  box.replaceChildren(el('p', { class: result.isError ? 'error' : 'ok', role: 'status' },
    `${result.isError ? 'Error' : 'Result'} in ${ms.toFixed(0)} ms`));
  for (const item of result.content || []) box.append(renderContent(item));
  if (result.structuredContent) box.append(el('details', {}, el('summary', {}, 'Structured content'), el('pre', { class: 'json' }, JSON.stringify(result.structuredContent, null, 2))));
}

function showNotification(list, message) {
  const p = message.params || {};
  let text = message.method;
  if (message.method === 'notifications/progress') text = `progress ${p.progress}${p.total ? ` / ${p.total}` : ''}${p.message ? `: ${p.message}` : ''}`;
  if (message.method === 'notifications/message') {
    const data = typeof p.data === 'string' ? p.data : typeof p.data?.msg === 'string' ? p.data.msg : JSON.stringify(p.data);
    text = `${p.level}: ${data}`;
  }
  list.append(el('li', {}, text));
}

function appUri(tool) {
  return tool._meta?.ui?.resourceUri || tool._meta?.['ui/resourceUri'];
}

function showTool(tool) {
  const schema = tool.inputSchema || { type: 'object', properties: {} };
  const parts = Object.entries(schema.properties || {}).map(([k, s]) => [k, field(s, k, (schema.required || []).includes(k))]);
  const result = el('div', { class: 'result', 'aria-live': 'polite' });
  const notes = el('ul', { class: 'notifications', 'aria-label': 'Notifications' });
  const app = el('div', { class: 'app' });
  const form = el('form', { class: 'card' }, ...parts.map(([, f]) => f.node), el('button', { type: 'submit' }, `Call ${tool.name}`));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const args = {};
    try {
      for (const [k, f] of parts) {
        const v = f.read();
        if (v !== undefined) args[k] = v;
      }
    } catch (e) {
      result.replaceChildren(el('p', { class: 'error' }, `Invalid input: ${e.message}`));
      return;
    }
    notes.replaceChildren();
    result.replaceChildren(el('p', { role: 'status' }, 'Calling…'));
    const uri = appUri(tool);
    const view = uri ? await openApp(client, app, uri, tool, args) : null;
    const started = performance.now();
    try {
      const answer = await client.request('tools/call', { name: tool.name, arguments: args, _meta: { progressToken: `p${Date.now()}` } }, (m) => showNotification(notes, m));
      renderResult(result, answer, performance.now() - started);
      view?.toolResult(answer);
    } catch (e) {
      result.replaceChildren(el('p', { class: 'error', role: 'status' }, `Error ${e.code ?? ''}: ${e.message}`));
    }
  });
  detail.replaceChildren(el('h3', {}, tool.title || tool.name), el('p', {}, tool.description || ''),
    uri(tool), form, notes, result, app);
}

function uri(tool) {
  const u = appUri(tool);
  return u ? el('p', { class: 'muted' }, 'MCP App: ', el('code', {}, u)) : null;
}

async function showResource(resource) {
  const box = el('div', { class: 'result' });
  detail.replaceChildren(el('h3', {}, resource.name || resource.uri), el('p', {}, el('code', {}, resource.uri)), box);
  try {
    const read = await client.request('resources/read', { uri: resource.uri });
    for (const c of read.contents || []) box.append(renderContent({ type: 'resource', resource: c }));
  } catch (e) {
    box.append(el('p', { class: 'error' }, e.message));
  }
}

function showTemplate(template) {
  const input = el('input', { id: 'template-uri', value: template.uriTemplate });
  const box = el('div', { class: 'result' });
  const form = el('form', { class: 'card' }, el('label', { for: 'template-uri' }, 'URI'), input, el('button', { type: 'submit' }, 'Read'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    box.replaceChildren();
    try {
      const read = await client.request('resources/read', { uri: input.value });
      for (const c of read.contents || []) box.append(renderContent({ type: 'resource', resource: c }));
    } catch (err) {
      box.append(el('p', { class: 'error' }, err.message));
    }
  });
  detail.replaceChildren(el('h3', {}, template.name || template.uriTemplate), el('p', {}, template.description || ''), form, box);
}

function showPrompt(prompt) {
  const parts = (prompt.arguments || []).map((a) => [a.name, field({ type: 'string', description: a.description }, a.name, a.required)]);
  const box = el('div', { class: 'result' });
  const form = el('form', { class: 'card' }, ...parts.map(([, f]) => f.node), el('button', { type: 'submit' }, 'Get prompt'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const args = {};
    for (const [k, f] of parts) {
      const v = f.read();
      if (v !== undefined) args[k] = v;
    }
    try {
      const got = await client.request('prompts/get', { name: prompt.name, arguments: args });
      box.replaceChildren(...(got.messages || []).map((m) => el('div', { class: 'message' }, el('strong', {}, m.role), renderContent(m.content))));
    } catch (err) {
      box.replaceChildren(el('p', { class: 'error' }, err.message));
    }
  });
  detail.replaceChildren(el('h3', {}, prompt.name), el('p', {}, prompt.description || ''), form, box);
}

async function fill(kind, method, key, label, show, capability, caps) {
  const list = document.getElementById(`list-${kind}`);
  if (!caps[capability]) {
    list.replaceChildren(el('li', { class: 'muted' }, 'Not offered'));
    return;
  }
  try {
    const items = await client.listAll(method, key);
    list.replaceChildren(...items.map((item) => el('li', {}, el('button', { type: 'button', class: 'item', onclick: () => show(item) }, label(item)))));
    if (!items.length) list.append(el('li', { class: 'muted' }, 'None'));
  } catch (e) {
    list.replaceChildren(el('li', { class: 'error' }, e.message));
  }
}

try {
  const init = await client.initialize();
  const caps = init.capabilities || {};
  status.textContent = `Connected to ${init.serverInfo?.name || server} ${init.serverInfo?.version || ''} (protocol ${init.protocolVersion})`;
  await fill('tools', 'tools/list', 'tools', (t) => t.name, showTool, 'tools', caps);
  await fill('resources', 'resources/list', 'resources', (r) => r.name || r.uri, showResource, 'resources', caps);
  await fill('templates', 'resources/templates/list', 'resourceTemplates', (t) => t.name || t.uriTemplate, showTemplate, 'resources', caps);
  await fill('prompts', 'prompts/list', 'prompts', (p) => p.name, showPrompt, 'prompts', caps);
} catch (e) {
  status.textContent = `Could not connect: ${e.message}`;
  status.className = 'error';
}
