// Entry point: mounts the dashboard; `?demo=1` swaps the edge stream for a synthetic one.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import App from './App.jsx';
import { DEFAULT_URL } from './stream.js';
import './styles.css';

async function boot() {
  const params = new URLSearchParams(window.location.search);
  const demo = params.get('demo') === '1';
  const url = params.get('events') || DEFAULT_URL;
  let streamOptions;
  if (demo) {
    const { createDemoEventSource } = await import('./demo.js');
    streamOptions = { EventSourceImpl: createDemoEventSource({ chaos: params.get('chaos') === '1' }) };
  }
  createRoot(document.getElementById('root')).render(
    <StrictMode>
      <App url={url} streamOptions={streamOptions} demo={demo} />
    </StrictMode>,
  );
}

boot();
