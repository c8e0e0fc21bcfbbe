//! The XDP/AF_XDP path: an XDP program steers DHCP to AF_XDP sockets, one per receive queue.
