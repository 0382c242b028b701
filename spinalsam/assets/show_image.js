// Run after a chat answer: the image panel scrolls into view when it is not whole on screen.
// On a phone the chat box sits below the image, so a command's effect would happen out of
// sight; on a wider screen the panel is already in view and nothing moves.
() => {
  const panel = document.querySelector("#ct-image");
  const r = panel?.getBoundingClientRect();
  if (r && (r.top < 0 || r.bottom > window.innerHeight)) panel.scrollIntoView({ block: "start" });
}
