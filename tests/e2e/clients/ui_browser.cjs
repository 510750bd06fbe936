// Drives Skyport's web UI in headless Chromium (playwright-core, the system's chromium) and
// prints one JSON report line: what each step saw. Usage:
//   node ui_browser.cjs '{"scenario": "admin"|"viewer"|"forms"|"chat", "url": ..., "user": ...,
//                         "password": ..., "gitUrl": ..., "appServer": ..., "server": ...,
//                         "secret": ..., "answer": ..., "shots": DIR, "chromium": PATH}'
// Every wait is bounded; a failing step prints {"error", "step"} and saves failure.png.

const { chromium } = require('playwright-core');
const path = require('path');

const spec = JSON.parse(process.argv[2]);
const report = { steps: [] };
let step = 'start';
const STEP_TIMEOUT = 60_000;
const BUILD_TIMEOUT = 300_000;

async function login(page) {
  step = 'login';
  await page.goto(`${spec.url}/ui/servers`);
  report.redirectedToLogin = page.url().includes('/ui/login');
  await page.getByLabel('User').fill(spec.user);
  await page.getByLabel('Password').fill(spec.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL('**/ui/servers');
  report.steps.push(step);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(spec.shots, `${spec.scenario}-${name}.png`), fullPage: true });
}

async function admin(page) {
  await login(page);
  await shot(page, '01-servers');

  step = 'deploy';
  await page.getByRole('link', { name: 'Deploy', exact: true }).click();
  await page.getByLabel('Name').fill('hello');
  await page.getByLabel('Git repository URL').fill(spec.gitUrl);
  await page.getByLabel('Entrypoint (optional)').fill('main.py');
  await page.getByRole('button', { name: 'Deploy', exact: true }).click();
  await page.locator('#deploy-status a').waitFor({ timeout: BUILD_TIMEOUT });
  report.deployStatus = await page.locator('#deploy-status').innerText();
  report.buildLog = await page.locator('#build-log').innerText();
  await shot(page, '02-deployed');
  report.steps.push(step);

  step = 'inspector';
  await page.locator('#deploy-status a').click();
  await page.getByRole('button', { name: 'hello', exact: true }).click();
  await page.getByLabel('name *').fill('Ada');
  await page.getByRole('button', { name: 'Call hello' }).click();
  await page.locator('.result pre').first().waitFor({ timeout: STEP_TIMEOUT });
  report.helloResult = await page.locator('.result').innerText();
  await shot(page, '03-inspector');
  report.steps.push(step);

  step = 'rollback';
  await page.getByRole('link', { name: 'Deployments' }).click();
  const button = page.locator('button.rollback').first();
  report.rollbackTarget = await button.getAttribute('data-deployment');
  await button.click();
  await page.waitForLoadState('load');
  await page
    .locator(`tr[data-deployment="${report.rollbackTarget}"] .badge.ok`, { hasText: 'live' })
    .waitFor({ timeout: STEP_TIMEOUT });
  report.liveAfterRollback = report.rollbackTarget;
  await shot(page, '04-rolled-back');
  report.steps.push(step);

  step = 'logs';
  await page.getByRole('link', { name: 'Logs' }).click();
  await page.locator('#server-log .line').first().waitFor({ timeout: STEP_TIMEOUT });
  report.logLines = await page.locator('#server-log .line').count();
  report.steps.push(step);

  if (spec.appServer) {
    step = 'app';
    await page.goto(`${spec.url}/ui/servers/${spec.appServer}/inspector`);
    await page.getByRole('button', { name: 'counter', exact: true }).click();
    await page.getByLabel('start *').fill('41');
    await page.getByRole('button', { name: 'Call counter' }).click();
    const frame = page.frameLocator('iframe.app-frame');
    await frame.locator('#added', { hasText: 'app called add' }).waitFor({ timeout: STEP_TIMEOUT });
    report.app = {
      title: await frame.locator('#title').innerText(),
      input: await frame.locator('#input').innerText(),
      result: await frame.locator('#result').innerText(),
      added: await frame.locator('#added').innerText(),
      sandbox: await page.locator('iframe.app-frame').getAttribute('sandbox'),
    };
    await shot(page, '05-app');
    report.steps.push(step);

    step = 'schema-form';
    await page.getByRole('button', { name: 'shape', exact: true }).click();
    await page.getByRole('button', { name: 'Add tags item' }).click();
    await page.getByRole('button', { name: 'Add tags item' }).click();
    await page.getByLabel('tags[0] *', { exact: true }).fill('a');
    await page.getByLabel('tags[1] *', { exact: true }).fill('b');
    await page.getByLabel('x *', { exact: true }).fill('3');
    await page.getByLabel('y *', { exact: true }).fill('4');
    await page.getByLabel('mode *', { exact: true }).selectOption({ label: 'slow' });
    await page.getByLabel('flag *', { exact: true }).check();
    await page.getByLabel('scale', { exact: true }).fill('2.5');
    await page.getByRole('button', { name: 'Call shape' }).click();
    await page.locator('.result pre.json').first().waitFor();
    report.shape = JSON.parse(await page.locator('.result pre.json').first().innerText());
    await shot(page, '06-schema-form');
    report.steps.push(step);

    step = 'notifications';
    await page.getByRole('button', { name: 'count', exact: true }).click();
    await page.getByLabel('n *', { exact: true }).fill('3');
    await page.getByRole('button', { name: 'Call count' }).click();
    await page.locator('.result pre.text', { hasText: 'counted to 3' }).waitFor();
    report.notifications = await page.locator('.notifications li').allInnerTexts();
    report.steps.push(step);
  }

  step = 'phone';
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${spec.url}/ui/servers`);
  await shot(page, '07-phone-servers');
  report.steps.push(step);
}

async function viewer(page) {
  await login(page);
  step = 'viewer-deployments';
  await page.goto(`${spec.url}/ui/servers/hello/deployments`);
  report.rollbackButtons = await page.locator('button.rollback').count();
  report.deployLinks = await page.getByRole('link', { name: 'Deploy a new version' }).count();
  report.rows = await page.locator('tr[data-deployment]').count();
  const target = await page.locator('tr[data-deployment]').last().getAttribute('data-deployment');
  report.forcedRollback = await page.evaluate(async ([server, deployment]) => {
    const r = await fetch(`/ui/api/servers/${server}/rollback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deployment }),
    });
    return { status: r.status, body: await r.text() };
  }, ['hello', target]);
  await shot(page, '01-viewer-deployments');
  report.steps.push(step);
}

// The forms and the charts: set a secret on `spec.server`'s environment tab and see it listed
// masked, create an API key in the settings (its secret is reported for the test to use),
// and wait for the metrics tab to chart the traffic the test made.
async function forms(page) {
  await login(page);
  step = 'env-form';
  await page.goto(`${spec.url}/ui/servers/${spec.server}/env`);
  await page.getByLabel('Name', { exact: true }).fill('API_TOKEN');
  await page.getByLabel('Value', { exact: true }).fill(spec.secret);
  await page.getByLabel('Secret (stored sealed, never shown again)').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('p.notice').waitFor();
  report.envNotice = await page.locator('p.notice').innerText();
  report.envRows = await page.locator('#env-vars tbody tr').allInnerTexts();
  report.secretOnPage = (await page.content()).includes(spec.secret);
  await shot(page, '01-env');
  // A name the API refuses: the message is shown beside the form (the pattern attribute is
  // removed first, as a user of an older browser would get past it).
  await page.locator('#e-name').evaluate((input) => input.removeAttribute('pattern'));
  await page.getByLabel('Name', { exact: true }).fill('9LIVES');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#env-form p.error').waitFor();
  report.envError = await page.locator('#env-form p.error').innerText();
  report.steps.push(step);

  step = 'key-form';
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Name (optional; unique among live keys)').fill('e2e-key');
  await page.getByLabel('Expires').selectOption({ label: 'In a day' });
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.locator('#key-secret').waitFor();
  report.keySecret = await page.locator('#key-secret').innerText();
  await shot(page, '02-key-created');
  report.steps.push(step);

  step = 'metrics';
  const deadline = Date.now() + STEP_TIMEOUT;
  for (;;) {
    await page.goto(`${spec.url}/ui/servers/${spec.server}/metrics`);
    report.charts = await page.locator('figure.chart').count();
    if (report.charts > 0 || Date.now() > deadline) break;
    await page.waitForTimeout(1000);
  }
  report.requestsChart = await page.locator('figure.chart svg').first().getAttribute('aria-label');
  report.requestBars = await page.locator('figure.chart').first().locator('rect.s1').count();
  await shot(page, '03-metrics');
  report.steps.push(step);

  step = 'registry';
  await page.getByRole('link', { name: 'Registry' }).click();
  report.catalogHosted = await page.locator('#kind-hosted ul.entries > li').allInnerTexts();
  await page.getByLabel('Search servers and their tools').fill(spec.server);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('#matches').waitFor();
  report.searchMatches = await page.locator('#matches > li a.entry').allInnerTexts();
  await shot(page, '04-registry');
  report.steps.push(step);
}

// Agents and chat: create an agent with the form on the Agents page, chat with it (the
// scripted model calls `hello`; the call, its arguments and result and the streamed answer
// are shown), reopen the stored conversation, then chat on `spec.appServer`'s Chat tab
// (ChatMCP), where the model calls a tool with an MCP App that opens inline and calls back
// through the host, and a provider error that is shown in the conversation.
async function chat(page) {
  await login(page);
  step = 'agent-form';
  await page.getByRole('link', { name: 'Agents', exact: true }).click();
  await page.locator('#a-name').fill('greeter');
  await page.locator('#a-servers').fill(spec.server);
  await page.locator('#a-instructions').fill('You greet people.');
  await page.getByRole('button', { name: 'Create agent' }).click();
  await page.locator('p.notice').waitFor();
  report.agentNotice = await page.locator('p.notice').innerText();
  report.agentRows = await page.locator('table.agents tbody tr').allInnerTexts();
  await shot(page, '01-agents');
  report.steps.push(step);

  step = 'agent-chat';
  await page.getByRole('link', { name: 'greeter', exact: true }).click();
  await page.getByLabel('Message').fill('Greet Ada');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('.message.assistant p.text', { hasText: spec.answer }).waitFor();
  report.toolCall = await page.locator('.tool-call summary').first().innerText();
  report.toolArguments = JSON.parse(await page.locator('.tool-call pre.json').first().innerText());
  report.toolResult = await page.locator('.tool-call .tool-result').first().innerText();
  report.answer = await page.locator('.message.assistant p.text').last().innerText();
  await page.locator('#chat-conversations button').first().waitFor();
  report.conversations = await page.locator('#chat-conversations button').allInnerTexts();
  await shot(page, '02-agent-chat');
  report.steps.push(step);

  step = 'reopen';
  await page.getByRole('button', { name: 'New conversation' }).click();
  report.clearedMessages = await page.locator('#chat-log .message').count();
  await page.locator('#chat-conversations button').first().click();
  await page.locator('.message.user', { hasText: 'Greet Ada' }).waitFor();
  await page.locator('.message.assistant p.text', { hasText: spec.answer }).waitFor();
  report.reopenedToolCalls = await page.locator('#chat-log .tool-call').count();
  report.steps.push(step);

  step = 'server-chat';
  await page.goto(`${spec.url}/ui/servers/${spec.appServer}/chat`);
  await page.getByLabel('Message').fill('Count from 41');
  await page.getByRole('button', { name: 'Send' }).click();
  const frame = page.frameLocator('iframe.app-frame');
  await frame.locator('#added', { hasText: 'app called add' }).waitFor();
  report.chatApp = {
    input: await frame.locator('#input').innerText(),
    result: await frame.locator('#result').innerText(),
    added: await frame.locator('#added').innerText(),
    sandbox: await page.locator('iframe.app-frame').getAttribute('sandbox'),
  };
  await page.locator('.message.assistant p.text', { hasText: 'Counted.' }).waitFor();
  await shot(page, '03-server-chat');
  report.steps.push(step);

  step = 'chat-error';
  await page.getByLabel('Message').fill('Again');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('#chat-log p.error').waitFor();
  report.chatError = await page.locator('#chat-log p.error').innerText();
  report.chatStatus = await page.locator('#chat-status').innerText();
  await shot(page, '04-chat-error');
  report.steps.push(step);
}

const scenarios = { admin, viewer, forms, chat };

(async () => {
  const browser = await chromium.launch({
    executablePath: spec.chromium,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  report.console = [];
  page.on('console', (m) => m.type() === 'error' && report.console.push(m.text()));
  page.on('pageerror', (e) => report.console.push(`pageerror: ${e.message}`));
  try {
    await scenarios[spec.scenario](page);
  } catch (e) {
    report.error = String(e && e.stack || e);
    report.step = step;
    await page.screenshot({ path: path.join(spec.shots, `${spec.scenario}-failure.png`), fullPage: true }).catch(() => {});
  }
  await browser.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
})();
