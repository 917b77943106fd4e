"""The pywebview window: creating it, bringing it forward, reading its geometry, and the bridge under CSP.

Two adjustments to pywebview (pinned to one major version in ``pyproject.toml``),
both because the server sends its page with a strict Content-Security-Policy
(``script-src 'self' 'wasm-unsafe-eval'``, server/http/web.py) that forbids
evaluating strings:

- pywebview builds ``window.pywebview.api`` with ``new Function(...)``; the page's
  policy refuses it and the bridge never appears. `patch_bridge_script` appends a
  replacement of ``window.pywebview._createApi`` built from closures, same calls.
- pywebview answers each call with ``evaluate_js``, which wraps the answer in
  ``eval``; `NativeWindow.open` routes those answers through ``run_js`` instead.

On Qt, the window is raised and its geometry read with Qt itself, on the GUI thread
(`_QtHelper`); elsewhere pywebview's own calls do what they can.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import webview
import webview.util

from desktop_client.config import MIN_HEIGHT, MIN_WIDTH, WindowGeometry

logger = logging.getLogger(__name__)

CSP_SAFE_CREATE_API = r"""
window.pywebview._createApi = function (funcList) {
  funcList.forEach(function (element) {
    var funcName = element.func;
    var path = funcName.split('.');
    var name = path.pop();
    var target = path.reduce(function (obj, prop) {
      if (!obj[prop]) obj[prop] = {};
      return obj[prop];
    }, window.pywebview.api);
    window.pywebview._returnValuesCallbacks[funcName] = {};
    target[name] = function () {
      var id = (Math.random() + '').substring(2);
      var args = Array.prototype.slice.call(arguments);
      var promise = new Promise(function (resolve, reject) {
        window.pywebview._checkValue(funcName, resolve, reject, id);
      });
      window.pywebview._jsApiCallback(funcName, args, id);
      return promise;
    };
  });
};
"""
_ANSWER_PREFIX = "window.pywebview._returnValuesCallbacks["


def patch_bridge_script() -> None:
    """Make pywebview's injected script build the API without ``new Function`` (idempotent)."""
    original: Callable[..., Any] = webview.util.load_js_files
    if getattr(original, "_lien_csp_safe", False):
        return

    def load_js_files(window: webview.Window, platform: str) -> Any:
        js_code, finish_script = original(window, platform)  # (scripts, the script run last)
        return js_code + CSP_SAFE_CREATE_API, finish_script

    load_js_files._lien_csp_safe = True  # type: ignore[attr-defined]
    webview.util.load_js_files = load_js_files


class _QtHelper:
    """Runs window chores on Qt's GUI thread (a queued signal); None where the GUI is not Qt."""

    def __init__(self) -> None:
        from qtpy import QtCore

        class Relay(QtCore.QObject):
            call = QtCore.Signal(object)  # type: ignore[attr-defined]

        self._relay = Relay()
        self._relay.call.connect(lambda job: job(), QtCore.Qt.ConnectionType.QueuedConnection)

    @staticmethod
    def main_window() -> Any:
        from qtpy.QtWidgets import QApplication, QMainWindow

        app = QApplication.instance()
        if not isinstance(app, QApplication):
            return None
        windows = [w for w in app.topLevelWidgets() if isinstance(w, QMainWindow)]
        return windows[0] if windows else None

    def raise_window(self) -> None:
        def job() -> None:
            window = self.main_window()
            if window is None:
                return
            if window.isMinimized():
                window.showMaximized() if window.isMaximized() else window.showNormal()
            window.show()
            window.raise_()
            window.activateWindow()

        self._relay.call.emit(job)

    def geometry(self) -> WindowGeometry | None:
        """Call on the GUI thread (pywebview's ``closing`` event runs there)."""
        from qtpy.QtWidgets import QApplication

        window = self.main_window()
        if window is None:
            return None
        normal = window.normalGeometry()
        if not normal.isValid():
            normal = window.geometry()
        frame_offset = window.frameGeometry().topLeft() - window.geometry().topLeft()
        screen = QApplication.primaryScreen()
        origin = screen.geometry().topLeft() if screen is not None else None
        x = normal.x() + frame_offset.x() - (origin.x() if origin else 0)
        y = normal.y() + frame_offset.y() - (origin.y() if origin else 0)
        return WindowGeometry(
            width=normal.width(), height=normal.height(), x=x, y=y, maximized=window.isMaximized()
        )


class NativeWindow:
    """The one window, as the bridge (`bridge.WindowControl`) and the loader (`loader.PageWindow`) use it."""

    def __init__(self, gui: str | None) -> None:
        self._window: webview.Window | None = None
        self._qt = _QtHelper() if gui == "qt" else None
        self._geometry_lock = threading.Lock()
        self._geometry: WindowGeometry | None = None

    def open(self, *, title: str, html: str, js_api: object, geometry: WindowGeometry) -> webview.Window:
        patch_bridge_script()
        window = webview.create_window(
            title,
            html=html,
            js_api=js_api,
            width=geometry.width,
            height=geometry.height,
            x=geometry.x,
            y=geometry.y,
            maximized=geometry.maximized,
            min_size=(MIN_WIDTH, MIN_HEIGHT),
            text_select=True,  # messages can be selected and copied
            background_color="#f2f5f7",
        )
        assert window is not None
        self._geometry = geometry
        original_evaluate = window.evaluate_js

        def evaluate_js(script: str, callback: Callable[..., Any] | None = None) -> Any:
            if callback is None and script.startswith(_ANSWER_PREFIX):
                return window.run_js(script)  # an answer to the page: no eval (see module doc)
            return original_evaluate(script, callback)

        window.evaluate_js = evaluate_js  # type: ignore[method-assign]
        window.events.closing += self._remember_geometry
        self._window = window
        return window

    @property
    def window(self) -> webview.Window:
        assert self._window is not None, "open() first"
        return self._window

    # --- bridge.WindowControl

    def set_title(self, title: str) -> None:
        self.window.set_title(title)

    def bring_forward(self) -> None:
        if self._qt is not None:
            self._qt.raise_window()
        else:
            self.window.restore()
            self.window.show()

    def run_script(self, script: str) -> Any:
        try:
            return self.window.run_js(script)
        except Exception as error:  # the window is closing, or the page is between two loads
            logger.debug("script not run: %s", error)
            return None

    # --- loader.PageWindow

    def load_url(self, url: str) -> None:
        self.window.load_url(url)

    def load_html(self, content: str) -> None:
        self.window.load_html(content)

    # --- geometry

    def _remember_geometry(self) -> None:
        geometry = self._qt.geometry() if self._qt is not None else self._pywebview_geometry()
        if geometry is not None:
            with self._geometry_lock:
                self._geometry = geometry.clamped()

    def _pywebview_geometry(self) -> WindowGeometry | None:
        try:
            window = self.window
            return WindowGeometry(width=window.width, height=window.height, x=window.x, y=window.y)
        except Exception:
            return None

    def last_geometry(self) -> WindowGeometry | None:
        """The geometry when the window closed (or as it opened, if it never closed)."""
        with self._geometry_lock:
            return self._geometry

    def close(self) -> None:
        if self._window is not None:
            self._window.destroy()
