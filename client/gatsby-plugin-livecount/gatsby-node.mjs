// Checked by `gatsby develop` and `gatsby build`: a wrong option stops the
// build with a clear message instead of a site that silently counts nothing.
// Options left out fall back to the window.LIVECOUNT_* globals, then the defaults.
export const pluginOptionsSchema = ({ Joi }) =>
  Joi.object({
    url: Joi.string()
      .pattern(/^(wss?|https?):\/\/[^/\s]+/i)
      .description("the server's WebSocket address, e.g. wss://count.example.com/ws; default: GATSBY_LIVECOUNT_URL, else /ws on the page's host"),
    respectDnt: Joi.boolean().description("send no views for visitors whose browser sends Do Not Track (default false)"),
    uniqueness: Joi.string()
      .valid("seed", "tab")
      .description('"seed" (default): only a reload is a repeat; "tab": a tab that comes back to a post is a repeat too (sessionStorage)'),
    titles: Joi.string()
      .valid("head", "document", "none")
      .description('"head" (default): wait for the new route\'s <title>; "document": read it on the next frame; "none": send no titles'),
    titleTimeout: Joi.number().integer().min(0).max(10000).description("longest wait for the new <title>, ms (default 1000)"),
  });
