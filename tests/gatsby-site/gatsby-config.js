// The test blog. The tests point each page at their own livecount server with
// window.LIVECOUNT_URL; a real site sets `url` here (or GATSBY_LIVECOUNT_URL).
module.exports = {
  siteMetadata: { title: "livecount test blog" },
  trailingSlash: "always",
  plugins: [
    {
      resolve: "gatsby-plugin-livecount",
      options: { respectDnt: true },
    },
  ],
};
