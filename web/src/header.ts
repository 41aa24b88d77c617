// The top bar every logged-in page shares: title, who is logged in, log out.
import { api } from "./api";
import { h } from "./dom";

export function topBar(username: string, onLogout: () => void, ...middle: Node[]): HTMLElement {
  const logout = h(
    "button",
    {
      class: "ghost",
      testid: "logout",
      onclick: async () => {
        try {
          await api.logout();
        } finally {
          onLogout();
        }
      },
    },
    "Log out",
  );
  return h(
    "header",
    { class: "top-bar" },
    h("a", { class: "brand", href: "#/", testid: "brand" }, "radlens"),
    h("div", { class: "top-middle" }, ...middle),
    h("span", { class: "user", testid: "current-user" }, username),
    logout,
  );
}
