#!/bin/sh
echo "hello from the sample release"
