// A controllable EventSource stand-in for tests: tests drive open/error/events by hand.
export function makeFakeEventSource() {
  return class FakeEventSource {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 2;
    static instances = [];

    constructor(url, init) {
      this.url = url;
      this.init = init;
      this.readyState = 0;
      this.listeners = new Map();
      this.closed = false;
      FakeEventSource.instances.push(this);
    }

    addEventListener(type, fn) {
      if (!this.listeners.has(type)) this.listeners.set(type, []);
      this.listeners.get(type).push(fn);
    }

    removeEventListener(type, fn) {
      this.listeners.set(type, (this.listeners.get(type) || []).filter((f) => f !== fn));
    }

    close() {
      this.readyState = 2;
      this.closed = true;
    }

    dispatch(type, ev = {}) {
      for (const fn of this.listeners.get(type) || []) fn({ type, ...ev });
    }

    open() {
      this.readyState = 1;
      this.dispatch('open');
    }

    //  Sends `data` (an object, JSON-encoded, or a raw string) as an event of `type`.
    emit(type, data) {
      this.dispatch(type, { data: typeof data === 'string' ? data : JSON.stringify(data) });
    }

    //  A network error; closed=true is the terminal kind (readyState CLOSED).
    fail(closed = false) {
      this.readyState = closed ? 2 : 0;
      this.dispatch('error');
    }
  };
}
