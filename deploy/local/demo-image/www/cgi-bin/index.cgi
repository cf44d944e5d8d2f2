#!/bin/sh
# httpd runs this for every URL ending in "/" that has no index.html: answer like echo.
exec /www/cgi-bin/echo
