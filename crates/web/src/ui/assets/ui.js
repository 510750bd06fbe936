// Skyport UI: small behaviours of server-rendered pages (copy buttons, rollback, the deploy
// form with its live build log, the log tail). Every request goes to /ui/api/*, which the
// server forwards to the REST API as the signed-in user; no credential lives here.

const api = (path, options = {}) =>
  fetch(`/ui/api${path}`, {
    ...options,
    headers: { 'content-type': 'application/json', ...(options.headers || {}) },
  });

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error?.message || `${response.status}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

for (const button of document.querySelectorAll('button.copy')) {
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy';
    }
    setTimeout(() => (button.textContent = 'Copy'), 1500);
  });
}

for (const button of document.querySelectorAll('button.rollback')) {
  button.addEventListener('click', async () => {
    const status = document.getElementById('rollback-status');
    button.disabled = true;
    status.textContent = `Rolling back to ${button.dataset.deployment}…`;
    const response = await api(`/servers/${button.dataset.server}/rollback`, {
      method: 'POST',
      body: JSON.stringify({ deployment: button.dataset.deployment }),
    });
    if (response.ok) {
      status.textContent = `Live: ${button.dataset.deployment}`;
      location.reload();
    } else {
      status.textContent = `Rollback refused: ${await errorOf(response)}`;
      button.disabled = false;
    }
  });
}

function appendLine(pre, view) {
  const line = document.createElement('span');
  line.className = `line ${view.stream || ''}`;
  line.textContent = `${view.phase ? `[${view.phase}] ` : ''}${view.line}\n`;
  pre.append(line);
  return line;
}

const deployForm = document.getElementById('deploy-form');
if (deployForm) {
  const params = new URLSearchParams(location.search);
  if (params.get('name')) deployForm.elements.name.value = params.get('name');
  deployForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = deployForm.elements;
    const status = document.getElementById('deploy-status');
    const log = document.getElementById('build-log');
    log.textContent = '';
    const body = {
      source: { git: { url: form.url.value.trim(), ref: form.ref.value.trim() || null } },
      entrypoint: form.entrypoint.value.trim() || null,
      branch: form.branch.value.trim() || null,
    };
    if (form.auth.value) body.settings = { auth: form.auth.value === 'on' };
    status.textContent = 'Starting the build…';
    const response = await api(`/servers/${form.name.value.trim()}/deployments`, {
      method: 'POST',
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      status.textContent = `Deploy refused: ${await errorOf(response)}`;
      return;
    }
    const deployment = await response.json();
    status.textContent = `Building ${deployment.id}…`;
    const events = new EventSource(`/ui/api/deployments/${deployment.id}/logs?follow=true`);
    events.onmessage = (e) => appendLine(log, JSON.parse(e.data));
    events.addEventListener('end', (e) => {
      events.close();
      const view = JSON.parse(e.data);
      if (view.status === 'ready') {
        status.innerHTML = '';
        status.append('Deployed. ');
        const link = document.createElement('a');
        link.href = `/ui/servers/${view.server}/inspector`;
        link.textContent = `Open ${view.server} in the Inspector`;
        status.append(link);
      } else {
        status.textContent = `Build ${view.status}: ${view.failure?.message || ''}`;
      }
    });
  });
}

const serverLog = document.getElementById('server-log');
if (serverLog) {
  const filter = document.getElementById('log-filter');
  const follow = document.getElementById('log-follow');
  const matches = (el) => !filter.value || el.textContent.includes(filter.value);
  filter.addEventListener('input', () => {
    for (const el of serverLog.children) el.hidden = !matches(el);
  });
  const events = new EventSource(`/ui/api/servers/${serverLog.dataset.server}/logs?follow=true&limit=200`);
  events.onmessage = (e) => {
    const el = appendLine(serverLog, JSON.parse(e.data));
    el.hidden = !matches(el);
    if (follow.checked) serverLog.scrollTop = serverLog.scrollHeight;
  };
}
