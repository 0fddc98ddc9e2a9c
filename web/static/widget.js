// Axon chat widget. On any page:
//   <script src="https://YOUR-WORKER/widget.js" defer></script>
//   <axon-widget></axon-widget>          (attributes: api="https://YOUR-WORKER", user="visitor-1")
// The worker must list the page's origin in AXON_ALLOWED_ORIGINS for /api calls.
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
      const user = this.getAttribute('user') || 'widget';
      ready.then((m) => m.mount_widget(el, api, user)).catch((e) => {
        el.textContent = 'Axon widget failed to load: ' + e;
        el.setAttribute('role', 'alert');
      });
    }
  }
  if (!customElements.get('axon-widget')) customElements.define('axon-widget', AxonWidget);
})();
