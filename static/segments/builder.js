// The segment builder: the rule tree lives in the DOM; every htmx request from the builder
// carries it serialised as `rules`. SortableJS moves nodes; then the server re-renders.
(function () {
  "use strict";

  function builder() { return document.getElementById("seg-builder"); }

  function setDeep(obj, path, value) {
    var keys = path.split(".");
    var cur = obj;
    for (var i = 0; i < keys.length - 1; i++) {
      var key = keys[i];
      var nextIsIndex = /^\d+$/.test(keys[i + 1]);
      if (cur[key] === null || typeof cur[key] !== "object") cur[key] = nextIsIndex ? [] : {};
      cur = cur[key];
    }
    cur[keys[keys.length - 1]] = value;
  }

  function own(li, selector) {
    return Array.prototype.filter.call(li.querySelectorAll(selector), function (el) {
      return el.closest(".seg-node, .seg-palette-item") === li;
    });
  }

  function serializeGroup(li) {
    var head = li.querySelector(":scope > .seg-head");
    var list = li.querySelector(":scope > .seg-children");
    var children = [];
    Array.prototype.forEach.call(list.children, function (child) {
      var node = serializeNode(child);
      if (node) children.push(node);
    });
    return {
      type: "group",
      op: head.querySelector(".seg-op").value,
      negate: head.querySelector(".seg-negate").checked,
      children: children,
    };
  }

  function serializeNode(li) {
    if (li.classList.contains("seg-palette-item")) return JSON.parse(li.dataset.node);
    if (!li.classList.contains("seg-node")) return null;
    if (li.dataset.type === "group") return serializeGroup(li);
    var json = own(li, "[data-json]")[0];
    if (json) {
      try { return JSON.parse(json.value); } catch (e) { return JSON.parse(li.dataset.node); }
    }
    var node = JSON.parse(li.dataset.node);
    own(li, "[data-key]").forEach(function (el) {
      var value = el.type === "checkbox" ? el.checked : el.value;
      if (value === "true") value = true;
      else if (value === "false") value = false;
      setDeep(node, el.dataset.key, value);
    });
    if (node.type === "field" && li.dataset.arity === "none") delete node.value;
    return node;
  }

  function serialize() {
    var tops = document.querySelectorAll("#seg-tree .seg-top");
    return { include: serializeGroup(tops[0]), exclude: serializeGroup(tops[1]) };
  }

  function syncTree() {
    var root = builder();
    htmx.ajax("POST", root.dataset.treeUrl, { target: "#seg-tree", swap: "innerHTML", source: root });
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var root = builder();
    if (!root || !root.contains(event.detail.elt) || event.detail.verb === "get") return;
    event.detail.parameters.rules = JSON.stringify(serialize());
    event.detail.parameters.segment = root.dataset.segment || "";
  });

  // Changing an operator or a window type changes the editor's shape: re-render the tree.
  document.addEventListener("change", function (event) {
    if (event.target.closest("#seg-tree") && event.target.classList.contains("seg-structural")) {
      syncTree();
    }
  });

  // Type-ahead over the palette.
  document.addEventListener("input", function (event) {
    if (event.target.id !== "seg-palette-search") return;
    var q = event.target.value.trim().toLowerCase();
    document.querySelectorAll(".seg-palette .seg-palette-item").forEach(function (li) {
      li.hidden = q !== "" && li.dataset.label.indexOf(q) === -1;
    });
  });

  function initSortables(scope) {
    if (!window.Sortable || !scope.querySelectorAll) return;
    scope.querySelectorAll(".seg-children").forEach(function (el) {
      if (el._sortable) return;
      el._sortable = Sortable.create(el, {
        group: "rules",
        handle: ".seg-handle",
        animation: 120,
        forceFallback: true,
        fallbackOnBody: true,
        swapThreshold: 0.6,
        emptyInsertThreshold: 14,
        onEnd: function (evt) {
          if (evt.from !== evt.to || evt.oldIndex !== evt.newIndex) syncTree();
        },
      });
    });
    scope.querySelectorAll(".seg-palette-list").forEach(function (el) {
      if (el._sortable) return;
      el._sortable = Sortable.create(el, {
        group: { name: "rules", pull: "clone", put: false },
        sort: false,
        handle: ".seg-handle",
        forceFallback: true,
        fallbackOnBody: true,
        onEnd: function (evt) { if (evt.to !== evt.from) syncTree(); },
      });
    });
  }

  // A failed request must never replace the page: the rules being built live only in it.
  // Error responses are not swapped (htmx's default); with DEBUG on, django-htmx would show
  // Django's error page instead of the builder, so builder requests stop short of its
  // document-level listener. The builder says what happened and keeps everything as it was.
  // The message stays until a request to the endpoint that failed succeeds again.
  var failedPath = null;

  function endpoint(event) { return event.detail.pathInfo.requestPath.split("?")[0]; }

  function requestError(message, path) {
    var note = document.getElementById("seg-request-error");
    if (!note) return;
    failedPath = message ? path : null;
    note.textContent = message;
    note.hidden = !message;
  }

  function watchRequests(root) {
    root.addEventListener("htmx:beforeOnLoad", function (event) {
      if (event.detail.xhr.status >= 400) event.stopPropagation();
    });
    root.addEventListener("htmx:responseError", function (event) {
      requestError(
        "The server could not answer (error " + event.detail.xhr.status + "). " +
        "Your rules are unchanged; try again, or save them once the problem is fixed.",
        endpoint(event)
      );
    });
    root.addEventListener("htmx:sendError", function (event) {
      requestError(
        "The server could not be reached. Your rules are unchanged; try again.", endpoint(event)
      );
    });
    root.addEventListener("htmx:afterRequest", function (event) {
      if (event.detail.successful && endpoint(event) === failedPath) requestError("");
    });
    root.addEventListener("htmx:beforeSwap", dropStaleCounts);
  }

  // A count can arrive just after the tree was re-rendered (a drag or a button while the count
  // was on its way): the badges of nodes no longer on the page are dropped (htmx would log each
  // missing target as an error); the count that follows every re-render fills in the new ones.
  function dropStaleCounts(event) {
    if (event.detail.elt.id !== "seg-counter" || !event.detail.shouldSwap) return;
    var response = document.createElement("template");
    response.innerHTML = event.detail.serverResponse;
    var stale = Array.prototype.filter.call(
      response.content.querySelectorAll("[hx-swap-oob][id]"),
      function (el) { return !document.getElementById(el.id); }
    );
    if (!stale.length) return;
    stale.forEach(function (el) { el.remove(); });
    event.detail.serverResponse = response.innerHTML;
  }

  document.addEventListener("htmx:load", function (event) { initSortables(event.target); });
  document.addEventListener("DOMContentLoaded", function () {
    initSortables(document);
    if (builder()) watchRequests(builder());
  });
})();
