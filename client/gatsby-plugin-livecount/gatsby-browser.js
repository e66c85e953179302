// Gatsby browser API: configure the client once, report a view per route.
import { configure, getClient } from "./client.js";

export const onClientEntry = (_, pluginOptions) => {
  configure(pluginOptions);
};

// Before the new page renders: the title then is the page being left's.
export const onPreRouteUpdate = ({ location, prevLocation }) => {
  const client = getClient();
  if (client) client.onPreRouteUpdate({ location, prevLocation });
};

export const onRouteUpdate = ({ location, prevLocation }) => {
  const client = getClient();
  if (client) client.onRouteUpdate({ location, prevLocation });
};
