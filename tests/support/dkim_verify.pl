#!/usr/bin/perl
# Independent DKIM verifier for the tests: Mail::DKIM, resolving through the test's DNS server.
# usage: dkim_verify.pl <dns port> < message   -> one line per signature "<domain> <selector> <result>", then "RESULT <r>"
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my $port = shift or die "usage: $0 PORT < message\n";
Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, recurse => 1,
                            udp_timeout => 3, tcp_timeout => 3, retry => 1));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012$/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
foreach my $signature ($dkim->signatures) {
    printf "%s %s %s\n", $signature->domain, $signature->selector, $signature->result_detail;
}
print "RESULT ", $dkim->result, "\n";
