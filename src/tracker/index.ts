/** Public API of the tracker layer. */
export type {
  AnnounceEvent,
  AnnounceOptions,
  AnnounceRequest,
  AnnounceResponse,
  PeerAddress,
} from './types.js';
export {
  HTTP_CONNECT_TIMEOUT_MS,
  HTTP_TRACKER_TIMEOUT_MS,
  MAX_PEERS_PER_REPLY,
  MAX_TRACKER_BODY_BYTES,
  MAX_TRACKER_REDIRECTS,
  announceHttp,
  buildAnnounceUrl,
  parseHttpResponse,
} from './http.js';
export {
  UDP_CONNECTION_ID_TTL_MS,
  UDP_RETRY,
  announceUdp,
  clearUdpConnectionCache,
  type UdpAnnounceOptions,
  type UdpRetryOptions,
} from './udp.js';
export {
  ANNOUNCER_TIMING,
  Announcer,
  DEFAULT_NUM_WANT,
  DEFAULT_STOP_TIMEOUT_MS,
  type AnnouncerOptions,
  type AnnouncerTiming,
} from './announcer.js';
