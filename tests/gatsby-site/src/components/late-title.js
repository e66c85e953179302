import * as React from "react";

// Puts the page's <title> in some time after it renders, as React Helmet (on a
// later frame) and other head managers do, only later, so the race is certain.
// It goes first in <head>, where document.title reads it, and leaves with the page.
export const LATE_TITLE_MS = 300;

export default function LateTitle({ title }) {
  React.useEffect(() => {
    let element = null;
    const timer = setTimeout(() => {
      element = document.createElement("title");
      element.textContent = title;
      document.head.prepend(element);
    }, LATE_TITLE_MS);
    return () => {
      clearTimeout(timer);
      if (element) element.remove();
    };
  }, [title]);
  return null;
}
