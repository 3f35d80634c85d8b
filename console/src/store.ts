// A tiny reactive store: views read `state`, actions call `update`, and the page re-renders once per frame.
// lit-html diffs the DOM, so focus, caret and scroll positions survive a re-render.

type Listener = () => void;

export function createStore<S extends object>(initial: S) {
  const state = initial;
  const listeners = new Set<Listener>();
  let scheduled = false;

  function notify(): void {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      for (const listener of listeners) listener();
    });
  }

  return {
    state,
    update(change: Partial<S> | ((state: S) => void)): void {
      if (typeof change === "function") change(state);
      else Object.assign(state, change);
      notify();
    },
    subscribe(listener: Listener): void {
      listeners.add(listener);
    },
  };
}
