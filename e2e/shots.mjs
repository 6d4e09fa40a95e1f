import { chromium } from 'playwright-core';
const BASE = 'http://127.0.0.1:3055';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const errors = [];
page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
page.on('response', r => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
async function login(email, pw) {
  await page.goto(BASE + '/login');
  await page.waitForFunction(() => !document.querySelector('[data-testid="login-form"] button[type="submit"]').disabled);
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="password"]', pw);
  await page.locator('[data-testid="login-form"] button[type="submit"]').click();
  await page.waitForTimeout(1500);
}
await login('demo@headroom.example', 'Walnut-Harbor-92!x');
for (const p of (process.argv[2] || 'usage,allocation,billing,planning,audit,api-keys,webhooks,account,members').split(',')) {
  await page.goto(BASE + '/' + p);
  await page.waitForTimeout(3000);
  if (p === 'usage' && process.env.SPAN) { await page.selectOption('[data-testid="span-picker"]', 'hours'); if (process.env.SERIES) await page.selectOption('[data-testid="series-picker"]', {index: Number(process.env.SERIES)}); await page.waitForTimeout(3000); }
  await page.screenshot({ path: `/tmp/shot-${p}.png`, fullPage: true });
}
console.log(errors.join('\n'));
await browser.close();
