// Entry point: picks the page from the path and hands it the <main> element.
//   /                    home (spaces live, scheduled, ended; the operator creates spaces)
//   /spaces/{id}         a space: listen, raise a hand, speak, host
//   /spaces/{id}/replay  the recording with the timeline of who spoke
// `window.tribune` holds hooks for tests and curious users (analysers, state).

import { h, replace } from './ui.js';

window.tribune = window.tribune || { outputAnalyser: null, stageAnalyser: null, state: {} };

async function route() {
  const main = document.getElementById('main');
  const path = location.pathname.replace(/\/+$/, '') || '/';
  let m;
  try {
    if (path === '/') {
      const { showHome } = await import('./home.js');
      await showHome(main);
    } else if ((m = path.match(/^\/spaces\/([^/]+)\/replay$/))) {
      const { showReplay } = await import('./replay.js');
      await showReplay(main, decodeURIComponent(m[1]));
    } else if ((m = path.match(/^\/spaces\/([^/]+)$/))) {
      const { showSpace } = await import('./space.js');
      await showSpace(main, decodeURIComponent(m[1]));
    } else {
      document.title = 'Not found · tribune';
      replace(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/' }, 'Back to the spaces')));
    }
  } catch (e) {
    console.error(e);
    replace(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error' }, String(e.message || e)),
      h('p', {}, h('a', { href: location.href }, 'Reload the page')));
  }
}

route();
