import { render } from 'preact';
import { App } from './app.js';

const root = document.getElementById('app')!;
// The page's "Loading…" text goes: the console renders into an empty element.
root.replaceChildren();
render(<App />, root);
