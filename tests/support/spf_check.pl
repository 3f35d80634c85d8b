#!/usr/bin/perl
# Independent SPF check for the tests: Mail::SPF, resolving through the test's DNS server.
# usage: spf_check.pl <dns port> <mail from> <client ip>   -> the result code (pass, fail, softfail, permerror ...)
use strict;
use warnings;
use Mail::SPF;
use Net::DNS::Resolver;

my ($port, $identity, $ip) = @ARGV;
my $server = Mail::SPF::Server->new(
    dns_resolver => Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, udp_timeout => 3, retry => 1));
my $request = Mail::SPF::Request->new(scope => 'mfrom', identity => $identity, ip_address => $ip);
my $result = $server->process($request);
print $result->code, "\n";
