// Vite build of the aigw dashboard; `npm run dev` proxies the edge API to AIGW_EDGE.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

const edge = process.env.AIGW_EDGE || 'http://127.0.0.1:8080';
const proxied = ['/v1', '/healthz', '/readyz', '/metrics'];

export default defineConfig({
  base: './',
  plugins: [react()],
  server: {
    host: '127.0.0.1',
    proxy: Object.fromEntries(proxied.map((p) => [p, { target: edge, changeOrigin: true }])),
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    include: ['test/**/*.test.{js,jsx}'],
    setupFiles: ['test/setup.js'],
    restoreMocks: true,
  },
});
