// The host side of MCP Apps: a tool whose `_meta.ui.resourceUri` names a `ui://` resource
// (MIME text/html;profile=mcp-app) gets that HTML in an iframe sandboxed to scripts only (no
// same origin, so it reaches neither this page nor its cookies), under the CSP the resource
// declares in `_meta.ui.csp`. The app and the host speak JSON-RPC over postMessage: the app
// asks `ui/initialize` and says `ui/notifications/initialized`; the host then sends
// `ui/notifications/tool-input` and `ui/notifications/tool-result`; the app's `tools/call`
// and `resources/read` go through the same gateway connection as the Inspector, so with the
// signed-in user's rights and policies.

import { APP_MIME } from 'skyport/mcp.js';

const APPS_PROTOCOL = '2026-01-26';

// The Content-Security-Policy for an app from its declared domains; nothing beyond them.
export function policy(csp = {}) {
  const list = (domains) => (domains || []).filter((d) => /^[a-z0-9.:*/_-]+$/i.test(d)).join(' ');
  const resources = list(csp.resourceDomains);
  return [
    "default-src 'none'",
    `script-src 'unsafe-inline' ${resources}`.trim(),
    `style-src 'unsafe-inline' ${resources}`.trim(),
    `img-src data: ${resources}`.trim(),
    `font-src ${resources || "'none'"}`,
    `media-src data: ${resources}`.trim(),
    `connect-src ${list(csp.connectDomains) || "'none'"}`,
    `frame-src ${list(csp.frameDomains) || "'none'"}`,
    `base-uri ${list(csp.baseUriDomains) || "'none'"}`,
    "form-action 'none'",
  ].join('; ');
}

function withPolicy(html, csp) {
  const meta = `<meta http-equiv="Content-Security-Policy" content="${policy(csp).replace(/"/g, '&quot;')}">`;
  return /<head[^>]*>/i.test(html) ? html.replace(/<head[^>]*>/i, (h) => `${h}${meta}`) : `${meta}${html}`;
}

// Opens the app of `tool` in `container`; resolves with { toolResult(result) } to pass the
// call's result on, or null when the resource is not an app.
export async function openApp(client, container, uri, tool, args) {
  const read = await client.request('resources/read', { uri });
  const content = (read.contents || []).find((c) => c.mimeType === APP_MIME && 'text' in c);
  if (!content) {
    container.replaceChildren(`The resource ${uri} is not an MCP App (${APP_MIME}).`);
    return null;
  }
  const csp = content._meta?.ui?.csp || {};
  const frame = document.createElement('iframe');
  frame.setAttribute('sandbox', 'allow-scripts');
  frame.setAttribute('title', `App of ${tool.name}`);
  frame.className = 'app-frame';
  frame.srcdoc = withPolicy(content.text, csp);
  container.replaceChildren(frame);

  let ready = false;
  let pendingResult = null;
  const post = (message) => frame.contentWindow?.postMessage({ jsonrpc: '2.0', ...message }, '*');
  const sendResult = (result) => post({ method: 'ui/notifications/tool-result', params: result });
  const theme = matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';

  const handlers = {
    'ui/initialize': async (params) => ({
      protocolVersion: params?.protocolVersion || APPS_PROTOCOL,
      hostInfo: { name: 'skyport', version: '1' },
      hostCapabilities: { serverTools: {}, serverResources: {}, openLinks: {}, logging: {} },
      hostContext: { theme, displayMode: 'inline', availableDisplayModes: ['inline'], toolInfo: { tool }, platform: 'web', locale: navigator.language },
    }),
    'tools/call': (params) => client.request('tools/call', params),
    'resources/read': (params) => client.request('resources/read', params),
    'ui/open-link': async (params) => {
      if (/^https?:/.test(params?.url || '')) window.open(params.url, '_blank', 'noopener');
      return {};
    },
    'ui/message': async () => ({}),
    'ui/update-model-context': async () => ({}),
    ping: async () => ({}),
  };

  window.addEventListener('message', async (event) => {
    if (event.source !== frame.contentWindow) return;
    const message = event.data;
    if (!message || message.jsonrpc !== '2.0' || typeof message.method !== 'string') return;
    if (!('id' in message)) {
      if (message.method === 'ui/notifications/initialized') {
        ready = true;
        post({ method: 'ui/notifications/tool-input', params: { arguments: args } });
        if (pendingResult) sendResult(pendingResult);
      } else if (message.method === 'ui/notifications/size-changed' && message.params?.height) {
        frame.style.height = `${Math.min(Number(message.params.height), 2000)}px`;
      }
      return;
    }
    const handler = handlers[message.method];
    if (!handler) {
      post({ id: message.id, error: { code: -32601, message: `the host does not offer ${message.method}` } });
      return;
    }
    try {
      post({ id: message.id, result: await handler(message.params) });
    } catch (e) {
      post({ id: message.id, error: { code: e.code ?? -32603, message: e.message } });
    }
  });

  return {
    toolResult(result) {
      pendingResult = result;
      if (ready) sendResult(result);
    },
  };
}
