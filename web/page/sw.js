// Keeps the page usable offline: on install every file of the site (files.json, written by
// `pocketlm web`) is cached; afterwards requests are answered from the cache first.
const CACHE = 'pocketlm-site';

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const files = await (await fetch('files.json', { cache: 'no-store' })).json();
    const cache = await caches.open(`${CACHE}-${files.version}`);
    await cache.addAll(files.files);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const files = await (await caches.match('files.json')) ?? null;
    const keep = files ? `${CACHE}-${(await files.json()).version}` : null;
    for (const key of await caches.keys()) if (key.startsWith(CACHE) && key !== keep) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  if (event.request.method !== 'GET') return;
  event.respondWith((async () => {
    const url = new URL(event.request.url);
    const hit = await caches.match(url.pathname === new URL('./', self.registration.scope).pathname
      ? new URL('index.html', self.registration.scope).href : event.request, { ignoreSearch: true });
    return hit || fetch(event.request);
  })());
});
