// Axon chat widget. On any page:
//   <script src="https://YOUR-WORKER/widget.js" defer></script>
//   <axon-widget key="AXON_WIDGET_KEY's value"></axon-widget>   (also: api="https://YOUR-WORKER")
// The key is publishable: it only chats and talks, and only from the origins the worker lists
// in AXON_ALLOWED_ORIGINS. `data-key` works too.
(() => {
  const script = document.currentScript;
  const base = new URL('./', script ? script.src : location.href);
  const css = document.createElement('link');
  css.rel = 'stylesheet';
  css.href = new URL('widget.css', base).href;
  document.head.appendChild(css);
  const ready = import(new URL('pkg-widget/widget.js', base).href).then(async (m) => {
    await m.default({ module_or_path: new URL('pkg-widget/widget_bg.wasm', base) });
    return m;
  });
  class AxonWidget extends HTMLElement {
    connectedCallback() {
      if (this.mounted) return;
      this.mounted = true;
      const el = document.createElement('div');
      this.appendChild(el);
      const api = this.getAttribute('api') || base.origin;
      const key = this.getAttribute('key') || this.dataset.key || '';
      ready.then((m) => m.mount_widget(el, api, key)).catch((e) => {
        el.textContent = 'Axon widget failed to load: ' + e;
        el.setAttribute('role', 'alert');
      });
    }
  }
  if (!customElements.get('axon-widget')) customElements.define('axon-widget', AxonWidget);
})();
