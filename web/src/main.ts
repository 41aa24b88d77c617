// The radlens reading room: hash routes #/login, #/ (worklist), #/study/<uid>,
// #/learning (the active-learning queue) and #/monitoring (model monitoring).
import "./style.css";
import { ApiError, api, setUnauthorizedHandler } from "./api";
import { h } from "./dom";
import { topBar } from "./header";
import { learningPage } from "./learning";
import { dashboardPage } from "./dashboard";
import { loginPage } from "./login";
import { worklistPage } from "./worklist";

const root = document.getElementById("app")!;
let username: string | null = null;
let leave: () => void = () => undefined;
let afterLogin = "#/";

function go(hash: string): void {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** To the login page; after logging in, back to `next` (by default where the reader was). */
function toLogin(next = location.hash || "#/"): void {
  username = null;
  if (location.hash.startsWith("#/login")) return; // already there: keep what was typed
  afterLogin = next;
  go("#/login");
}

function nav(): HTMLElement {
  const here = location.hash || "#/";
  const link = (hash: string, text: string, testid: string): HTMLElement =>
    h("a", { href: hash, class: `nav-link${here === hash ? " current" : ""}`, testid }, text);
  return h(
    "nav",
    { class: "top-nav" },
    link("#/", "Worklist", "nav-worklist"),
    " ",
    link("#/learning", "Learning queue", "nav-learning"),
    " ",
    link("#/monitoring", "Monitoring", "nav-monitoring"),
  );
}

function header(...middle: Node[]): HTMLElement {
  return topBar(username ?? "", () => toLogin("#/"), nav(), ...middle);
}

function route(): void {
  leave();
  leave = () => undefined;
  const hash = location.hash || "#/";
  const atLogin = hash.startsWith("#/login");
  if (username === null && !atLogin) {
    toLogin();
    return;
  }
  if (atLogin) {
    if (username !== null) {
      go("#/");
      return;
    }
    leave = loginPage(root, (name) => {
      username = name;
      go(afterLogin.startsWith("#/login") ? "#/" : afterLogin);
    });
    return;
  }
  const study = /^#\/study\/(.+)$/.exec(hash);
  if (study) {
    // The viewer (Cornerstone3D) is most of the code: load it when a study is opened.
    let left = false;
    leave = () => {
      left = true;
    };
    import("./study").then(
      ({ studyPage }) => {
        if (!left) leave = studyPage(root, header, decodeURIComponent(study[1]));
      },
      (exc: unknown) => {
        root.replaceChildren(
          header(),
          h("p", { class: "form-error" }, `The viewer did not load: ${String(exc)}`),
        );
      },
    );
  } else if (hash.startsWith("#/learning")) {
    leave = learningPage(root, header(), (uid) => go(`#/study/${encodeURIComponent(uid)}`));
  } else if (hash.startsWith("#/monitoring")) {
    leave = dashboardPage(root, header());
  } else {
    leave = worklistPage(root, header(), (uid) => go(`#/study/${encodeURIComponent(uid)}`));
  }
}

async function start(): Promise<void> {
  setUnauthorizedHandler(toLogin);
  try {
    username = (await api.me()).username;
  } catch (exc) {
    if (!(exc instanceof ApiError && exc.status === 401)) {
      root.replaceChildren(
        h(
          "p",
          { class: "form-error" },
          `radlens is not reachable: ${exc instanceof Error ? exc.message : String(exc)}`,
        ),
      );
      return;
    }
    if (!location.hash.startsWith("#/login")) afterLogin = location.hash || "#/";
  }
  window.addEventListener("hashchange", route);
  route();
}

void start();
